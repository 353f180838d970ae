// The stop barrier. The DNS workers share each socket by its descriptor
// number, so every worker's close of a listener closes the same number, and
// only the first close is real. A later one closes whatever the process opened
// in between under that number (the lowest free one, so it happens): another
// thread's fresh connection or file, whose next use then makes libuv abort the
// process (SIGABRT in epoll_ctl, seen at shutdown). Node 20 has neither
// SO_REUSEPORT nor dup(), so the closes cannot be made one each; instead they
// all happen while no thread of ours can open anything: every worker stops in
// its JavaScript until all have arrived, then closes, then waits until all
// have closed, and the main thread blocks (Atomics.wait) until then.

/** Slots of the shared Int32Array. */
export const ARRIVED = 0;
export const CLOSED = 1;
export const PARTIES = 2;

/** A barrier's memory: three slots, zero. */
export function createStopBarrier(): SharedArrayBuffer {
  return new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT);
}

/** Blocks this thread until slot `slot` reaches the party count, or `timeoutMs` passed. True when it did. */
export function waitFor(b: Int32Array, slot: number, timeoutMs: number): boolean {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const seen = Atomics.load(b, slot);
    if (seen >= Atomics.load(b, PARTIES)) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    Atomics.wait(b, slot, seen, left);
  }
}

/** Counts this thread in at `slot` and wakes whoever waits on it. */
export function arrive(b: Int32Array, slot: number): void {
  Atomics.add(b, slot, 1);
  Atomics.notify(b, slot);
}

/** A worker's part: wait for all, `close` (synchronous closes of the shared descriptors), wait until all closed. */
export function closeTogether<T>(b: Int32Array, close: () => T, timeoutMs = 1000): T {
  arrive(b, ARRIVED);
  waitFor(b, ARRIVED, timeoutMs);
  try {
    return close();
  } finally {
    arrive(b, CLOSED);
    waitFor(b, CLOSED, timeoutMs);
  }
}

/** The main thread's part, after it told `parties` workers to stop: blocks until each closed (or `timeoutMs`). */
export function awaitClosed(b: Int32Array, timeoutMs = 2000): boolean {
  return waitFor(b, CLOSED, timeoutMs);
}
