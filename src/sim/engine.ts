import { setTimeout as sleep } from 'node:timers/promises';

export type EngineOptions = {
  model: string;
  /** How long after (re)start the model takes to load; not ready until then. */
  warmupMs: number;
  /** Time to first token. */
  ttftMs: number;
  /** One sequence's decode speed while the batch is at or under `batchKnee`. */
  tokensPerSecond: number;
  /** Sequences generated at once; more wait in a FIFO queue. */
  maxRunning: number;
  /** KV-cache size in tokens; a sequence holds prompt + max_tokens of it while it runs. Unlimited unless set. */
  kvCacheTokens?: number;
  /** Sequences the GPU decodes at full speed; past it each one slows by knee / running. `maxRunning` unless set (no slowdown). */
  batchKnee?: number;
  /** Fixed cost of one embeddings call (one forward pass). */
  embedCallMs?: number;
  /** Added cost per input of an embeddings call. */
  embedPerInputMs?: number;
  /** Device memory; vLLM-style, `gpuMemoryUtilization` of it is taken once the model is loaded. */
  gpuMemoryBytes?: number;
  gpuMemoryUtilization?: number;
  now?: () => number;
  /** The clock tokens and forward passes are timed on; `performance.now` unless set (tests move time by hand). */
  monotonic?: () => number;
  /** Waits `ms` on that clock, or rejects when `signal` aborts; a timer unless set. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
};

export type Gauges = {
  running: number;
  waiting: number;
  kvCacheUsage: number;
  /** KV-cache tokens held by running sequences, and the cache size. */
  kvCacheTokensUsed?: number;
  kvCacheTokens?: number;
  gpuMemoryUsedBytes?: number;
  gpuMemoryTotalBytes?: number;
};

/**
 * The simulated GPU: a loading model, a batch of running sequences and a
 * queue. It knows nothing of HTTP; routes ask it for tokens.
 */
export interface Engine {
  readonly model: string;
  /** The KV cache in tokens: a request needing more can never run. */
  readonly kvCacheTokens: number;
  ready(): boolean;
  /** A process (re)start: the model loads again from now. */
  boot(): void;
  gauges(): Gauges;
  /**
   * Yields `n` tokens on the engine's clock; stops (and frees its slot) when
   * `signal` aborts. The sequence waits for a slot and for `promptTokens + n`
   * tokens of KV cache.
   */
  generate(n: number, signal: AbortSignal, promptTokens?: number): AsyncGenerator<string>;
  /** One embeddings forward pass over `inputs` inputs; passes run one at a time, in order. */
  embed(inputs: number, signal: AbortSignal): Promise<void>;
}

const WORDS = ['The', 'model', 'answers', 'from', 'a', 'simulated', 'GPU', 'in', 'Southeast', 'Asia', 'quickly', 'and', 'steadily', '.'];

export function tokenText(i: number): string {
  return (i === 0 ? '' : ' ') + WORDS[i % WORDS.length];
}

/** How much slower each sequence decodes with `running` in the batch: aggregate throughput stops growing at the knee. */
export function batchSlowdown(running: number, knee: number): number {
  return Math.max(1, running / knee);
}

export const ENGINE_DEFAULTS = {
  kvCacheTokens: 32_768,
  embedCallMs: 20,
  embedPerInputMs: 1,
  gpuMemoryBytes: 80 * 2 ** 30,
  gpuMemoryUtilization: 0.9,
};

type Waiter = { need: number; grant: () => void };

/** A FIFO admission queue over counted resources; the head blocks the rest, as in vLLM's FCFS scheduler. */
function createAdmission(fits: (need: number) => boolean, take: (need: number) => void) {
  const queue: Waiter[] = [];
  function pump(): void {
    while (queue.length > 0 && fits(queue[0].need)) {
      const w = queue.shift()!;
      take(w.need);
      w.grant();
    }
  }
  return {
    get waiting() {
      return queue.length;
    },
    pump,
    async acquire(need: number, signal: AbortSignal): Promise<void> {
      signal.throwIfAborted();
      if (queue.length === 0 && fits(need)) return take(need);
      await new Promise<void>((resolve, reject) => {
        const w: Waiter = {
          need,
          grant: () => {
            signal.removeEventListener('abort', onAbort);
            resolve();
          },
        };
        const onAbort = () => {
          queue.splice(queue.indexOf(w), 1);
          pump(); // a blocked head leaving may let the next ones in
          reject(signal.reason as Error); // an AbortError unless the caller aborted with its own reason
        };
        queue.push(w);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    },
  };
}

export function createEngine(opts: EngineOptions): Engine {
  const now = opts.now ?? Date.now;
  const mono = opts.monotonic ?? (() => performance.now());
  const pause = opts.sleep ?? ((ms: number, signal: AbortSignal) => sleep(ms, undefined, { signal }));
  const tokenMs = 1000 / opts.tokensPerSecond;
  const kvCap = opts.kvCacheTokens ?? Number.POSITIVE_INFINITY;
  const knee = opts.batchKnee ?? opts.maxRunning;
  const embedCallMs = opts.embedCallMs ?? ENGINE_DEFAULTS.embedCallMs;
  const embedPerInputMs = opts.embedPerInputMs ?? ENGINE_DEFAULTS.embedPerInputMs;
  const memTotal = opts.gpuMemoryBytes ?? ENGINE_DEFAULTS.gpuMemoryBytes;
  const memLoaded = Math.round(memTotal * (opts.gpuMemoryUtilization ?? ENGINE_DEFAULTS.gpuMemoryUtilization));
  let readyAt = now() + opts.warmupMs;
  let running = 0;
  let kvUsed = 0;
  let embedding = 0;

  const seqs = createAdmission(
    (need) => running < opts.maxRunning && kvUsed + need <= kvCap,
    (need) => {
      running++;
      kvUsed += need;
    },
  );
  const passes = createAdmission(
    () => embedding === 0,
    () => void embedding++,
  );

  function loaded(): number {
    if (opts.warmupMs <= 0) return 1;
    return Math.min(1, Math.max(0, 1 - (readyAt - now()) / opts.warmupMs));
  }

  return {
    model: opts.model,
    kvCacheTokens: kvCap,
    ready: () => now() >= readyAt,
    boot() {
      readyAt = now() + opts.warmupMs;
    },
    gauges: () => ({
      running: running + embedding,
      waiting: seqs.waiting + passes.waiting,
      // A full batch blocks admission as surely as a full cache, so either reads as full.
      kvCacheUsage: Math.min(1, Math.max(running / opts.maxRunning, Number.isFinite(kvCap) ? kvUsed / kvCap : 0)),
      kvCacheTokensUsed: kvUsed,
      kvCacheTokens: kvCap,
      // vLLM takes its share of device memory at load time (weights + a preallocated KV pool), not per request.
      gpuMemoryUsedBytes: Math.round(memLoaded * loaded()),
      gpuMemoryTotalBytes: memTotal,
    }),
    async *generate(n, signal, promptTokens = 0) {
      const need = Math.min(kvCap, promptTokens + n);
      await seqs.acquire(need, signal);
      try {
        // Token i is due one (load-scaled) interval after token i-1, on a
        // schedule rather than after the last timer: timers drift, the schedule does not.
        let due = mono() + opts.ttftMs;
        for (let i = 0; i < n; i++) {
          if (i > 0) due += tokenMs * batchSlowdown(running, knee);
          const wait = due - mono();
          if (wait > 0) await pause(wait, signal);
          signal.throwIfAborted();
          yield tokenText(i);
        }
      } finally {
        running--;
        kvUsed -= need;
        seqs.pump();
      }
    },
    async embed(inputs, signal) {
      await passes.acquire(1, signal);
      try {
        await pause(embedCallMs + inputs * embedPerInputMs, signal);
      } finally {
        embedding--;
        passes.pump();
      }
    },
  };
}
