import { setTimeout as sleep } from 'node:timers/promises';

export type EngineOptions = {
  model: string;
  /** How long after (re)start the model takes to load; not ready until then. */
  warmupMs: number;
  /** Time to first token. */
  ttftMs: number;
  tokensPerSecond: number;
  /** Sequences generated at once; more wait in a FIFO queue. */
  maxRunning: number;
  now?: () => number;
};

export type Gauges = { running: number; waiting: number; kvCacheUsage: number };

/**
 * The simulated GPU: a loading model, a batch of running sequences and a
 * queue. It knows nothing of HTTP; routes ask it for tokens.
 */
export interface Engine {
  readonly model: string;
  ready(): boolean;
  /** A process (re)start: the model loads again from now. */
  boot(): void;
  gauges(): Gauges;
  /** Yields `n` tokens on the engine's clock; stops (and frees its slot) when `signal` aborts. */
  generate(n: number, signal: AbortSignal): AsyncGenerator<string>;
}

const WORDS = ['The', 'model', 'answers', 'from', 'a', 'simulated', 'GPU', 'in', 'Southeast', 'Asia', 'quickly', 'and', 'steadily', '.'];

export function tokenText(i: number): string {
  return (i === 0 ? '' : ' ') + WORDS[i % WORDS.length];
}

export function createEngine(opts: EngineOptions): Engine {
  const now = opts.now ?? Date.now;
  const tokenMs = 1000 / opts.tokensPerSecond;
  let readyAt = now() + opts.warmupMs;
  let running = 0;
  const waiting: Array<() => void> = [];

  async function acquire(signal: AbortSignal): Promise<void> {
    if (running < opts.maxRunning) {
      running++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        waiting.splice(waiting.indexOf(grant), 1);
        reject(signal.reason);
      };
      waiting.push(grant);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  function release(): void {
    const next = waiting.shift();
    if (next) next(); // the slot passes straight to the next sequence
    else running--;
  }

  return {
    model: opts.model,
    ready: () => now() >= readyAt,
    boot() {
      readyAt = now() + opts.warmupMs;
    },
    gauges: () => ({ running, waiting: waiting.length, kvCacheUsage: Math.min(1, running / opts.maxRunning) }),
    async *generate(n, signal) {
      await acquire(signal);
      try {
        // Token i is due at start + ttft + i·tokenMs: timers drift, the schedule does not.
        const start = performance.now();
        for (let i = 0; i < n; i++) {
          const due = start + opts.ttftMs + i * tokenMs;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait, undefined, { signal });
          signal.throwIfAborted();
          yield tokenText(i);
        }
      } finally {
        release();
      }
    },
  };
}
