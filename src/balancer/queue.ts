/** Why a request was turned away before it reached an instance. */
export class OverloadedError extends Error {
  constructor(
    readonly reason: 'queue-full' | 'queue-timeout',
    /** What to put in `Retry-After`, in whole seconds. */
    readonly retryAfterS: number,
  ) {
    super(reason === 'queue-full' ? 'admission queue is full' : 'timed out waiting for a free slot');
    this.name = 'OverloadedError';
  }
}

export type WaitQueueOptions = {
  /** Waiters held at once; the next one is refused at once. */
  maxQueue: number;
  /** How long one waiter may wait before it is refused. */
  queueTimeoutMs: number;
};

/**
 * A bounded FIFO of callers waiting for capacity that only they can judge:
 * each brings a `take()` that returns what it needs (a slot, an instance) or
 * undefined. Whoever frees capacity calls `wake()`, which offers it to the
 * waiters in arrival order; a waiter that still cannot take does not block
 * the ones behind it (a request for another model may fit).
 */
export interface WaitQueue {
  /** Resolves with the first value `take()` returns; rejects with OverloadedError, or the signal's reason on abort. */
  wait<T>(take: () => T | undefined, signal?: AbortSignal, key?: string): Promise<T>;
  /**
   * `wait` with callbacks, for a hot path: `grant` or `fail` (OverloadedError)
   * is called, synchronously when it can be decided now. Returns a function
   * that leaves the queue (a client gone), or undefined when already decided.
   */
  enter<T>(take: () => T | undefined, grant: (v: T) => void, fail: (err: OverloadedError) => void, key?: string): (() => void) | undefined;
  /** Capacity was freed or added: serve waiters in order. */
  wake(): void;
  /** New limits for the waiters to come (those waiting keep their deadline); a shorter queue turns no one out. */
  setLimits(limits: WaitQueueOptions): void;
  readonly size: number;
  /** Waiters whose key starts with `prefix` (a model's: `<model>|`). */
  count(prefix: string): number;
}

/**
 * `key` names what a waiter can take (model, kind, instances already tried):
 * once one waiter with a key finds nothing, the others with the same key in
 * the same pass are skipped — a pass costs one pick per key, not per waiter.
 */
type Waiter = { take: () => unknown; grant: (v: unknown) => void; fail: (err: OverloadedError) => void; key?: string; timer?: NodeJS.Timeout };

// Signals here are aborted with an Error (the proxy's ClientGone, the batcher's own, or the default
// AbortError); the reason is passed on as it is.
const abortReason = (signal: AbortSignal) => signal.reason as Error;

export function createWaitQueue(limits: WaitQueueOptions): WaitQueue {
  const waiters: Waiter[] = [];
  let opts = { ...limits };
  let retryAfterS = Math.max(1, Math.ceil(opts.queueTimeoutMs / 1000));

  function wake(): void {
    if (waiters.length === 0) return;
    const full = new Set<string>();
    for (let i = 0; i < waiters.length; ) {
      const w = waiters[i];
      if (w.key !== undefined && full.has(w.key)) {
        i++;
        continue;
      }
      const v = w.take();
      if (v === undefined) {
        if (w.key !== undefined) full.add(w.key);
        i++;
      } else {
        waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.grant(v);
      }
    }
  }

  function enter<T>(take: () => T | undefined, grant: (v: T) => void, fail: (err: OverloadedError) => void, key?: string): (() => void) | undefined {
    // Capacity may have appeared without a wake(): those already waiting go first.
    if (waiters.length > 0) wake();
    const now = take();
    if (now !== undefined) return void grant(now);
    if (waiters.length >= opts.maxQueue) return void fail(new OverloadedError('queue-full', retryAfterS));
    const w: Waiter = { key, take, grant: grant as (v: unknown) => void, fail };
    w.timer = setTimeout(() => {
      leave();
      fail(new OverloadedError('queue-timeout', retryAfterS));
    }, opts.queueTimeoutMs);
    const leave = () => {
      const i = waiters.indexOf(w);
      if (i >= 0) waiters.splice(i, 1);
      clearTimeout(w.timer);
    };
    waiters.push(w);
    return leave;
  }

  return {
    wait<T>(take: () => T | undefined, signal?: AbortSignal, key?: string): Promise<T> {
      if (signal?.aborted) return Promise.reject(abortReason(signal));
      return new Promise<T>((resolve, reject) => {
        const onAbort = () => {
          leave?.();
          reject(abortReason(signal!));
        };
        const leave = enter<T>(
          take,
          (v) => {
            signal?.removeEventListener('abort', onAbort);
            resolve(v);
          },
          (err) => {
            signal?.removeEventListener('abort', onAbort);
            reject(err);
          },
          key,
        );
        if (leave) signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
    enter,
    wake,
    setLimits(next) {
      opts = { ...next };
      retryAfterS = Math.max(1, Math.ceil(opts.queueTimeoutMs / 1000));
      // A longer queue may let waiters in that the old one refused; those in it now may fit too.
      wake();
    },
    count(prefix) {
      let n = 0;
      for (const w of waiters) if (w.key?.startsWith(prefix)) n++;
      return n;
    },
    get size() {
      return waiters.length;
    },
  };
}

export type AdmissionOptions = WaitQueueOptions & {
  /** Holders at once; 16 unless set. */
  maxConcurrent?: number;
};

export type Release = () => void;

/** A counting semaphore with a bounded FIFO queue in front: memory never grows past `maxQueue` waiters. */
export interface Admission {
  /** Resolves with a release function (idempotent) once a slot is free; rejects with OverloadedError, or the signal's reason. */
  acquire(signal?: AbortSignal): Promise<Release>;
  readonly active: number;
  readonly queued: number;
}

export function createAdmission(opts: AdmissionOptions): Admission {
  const max = opts.maxConcurrent ?? 16;
  const queue = createWaitQueue(opts);
  let active = 0;

  const take = (): Release | undefined => {
    if (active >= max) return undefined;
    active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      active--;
      queue.wake();
    };
  };

  return {
    acquire: (signal) => queue.wait(take, signal),
    get active() {
      return active;
    },
    get queued() {
      return queue.size;
    },
  };
}
