/**
 * An abort signal that fires after `ms`, or when `parent` aborts. Made by
 * hand rather than with AbortSignal.any: on Node 20 every signal combined
 * with a long-lived parent (the agent's stop signal) stays attached to it
 * (nodejs/node#55351), and the agent makes several per second for days.
 * Call `done()` when the work is over, to detach.
 */
export function deadline(ms: number, parent?: AbortSignal): { signal: AbortSignal; timedOut(): boolean; done(): void } {
  const ac = new AbortController();
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    ac.abort(new DOMException(`timeout after ${ms} ms`, 'TimeoutError'));
  }, ms);
  const onParent = () => ac.abort(parent?.reason);
  if (parent?.aborted) onParent();
  else parent?.addEventListener('abort', onParent, { once: true });
  return {
    signal: ac.signal,
    timedOut: () => expired,
    done() {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onParent);
    },
  };
}
