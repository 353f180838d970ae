import { setTimeout as sleep } from 'node:timers/promises';
import { BLOCK_TOKENS } from '../prompt/blocks.js';
import { createPrefixCache, type Allocation, type BlockRequest } from './prefix-cache.js';

export type EngineOptions = {
  model: string;
  /** How long after (re)start the model takes to load; not ready until then. */
  warmupMs: number;
  /** The fixed part of the time to first token; the prefill of the uncached prompt comes on top. */
  ttftMs: number;
  /** One sequence's decode speed while the batch is at or under `batchKnee`. */
  tokensPerSecond: number;
  /** Sequences generated at once; more wait in a FIFO queue. */
  maxRunning: number;
  /**
   * KV-cache size in tokens, as `kvCacheTokens / 16` blocks; a sequence holds
   * the blocks of prompt + max_tokens while it runs, sharing cached prompt
   * blocks (prefix-cache.ts). Unlimited unless set.
   */
  kvCacheTokens?: number;
  /** Prompt tokens computed per second: the uncached part of each prompt is prefilled at this speed, one prefill at a time. */
  prefillTokensPerSecond?: number;
  /** Automatic prefix caching (vLLM's `--enable-prefix-caching`): on unless false. */
  prefixCache?: boolean;
  /** How many times longer a decode step takes while a prefill runs beside it (chunked prefill shares each step). */
  prefillDecodeSlowdown?: number;
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
  /** Counters since the last (re)start, in tokens: prompt tokens of admitted sequences, and those found cached. */
  prefixCacheQueries?: number;
  prefixCacheHits?: number;
};

/** A sequence's prompt as the KV cache sees it: its tokens and the hashes of its full blocks (src/prompt/blocks.ts). */
export type Prompt = { tokens: number; hashes?: readonly number[] };
/** What admission found: the prompt tokens already cached (reported as `usage.prompt_tokens_details.cached_tokens`). */
export type Admission = { cachedTokens: number };

/**
 * The simulated GPU: a loading model, a batch of running sequences and a
 * queue. It knows nothing of HTTP; routes ask it for tokens.
 */
export interface Engine {
  readonly model: string;
  /** The KV cache in tokens (whole blocks): a request needing more can never run. */
  readonly kvCacheTokens: number;
  ready(): boolean;
  /** A process (re)start: the model loads again from now, the prefix cache is empty and its counters start from 0. */
  boot(): void;
  gauges(): Gauges;
  /**
   * Yields `n` tokens on the engine's clock; stops (and frees its slot) when
   * `signal` aborts. The sequence waits for a slot and for the KV blocks of
   * `prompt.tokens + n` tokens that are not cached already; once admitted,
   * `admitted` hears how many prompt tokens were cached. The first token comes
   * `ttftMs` after the prefill of the rest. Throws a RangeError at once when
   * the sequence is larger than the whole cache.
   */
  generate(n: number, signal: AbortSignal, prompt?: Prompt, admitted?: (a: Admission) => void): AsyncGenerator<string>;
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

/** Which vLLM figure each default comes from: README.md, "Where the defaults come from". */
export const ENGINE_DEFAULTS = {
  kvCacheTokens: 32_768,
  prefillTokensPerSecond: 20_000,
  prefixCache: true,
  prefillDecodeSlowdown: 2,
  embedCallMs: 20,
  embedPerInputMs: 1,
  gpuMemoryBytes: 80 * 2 ** 30,
  gpuMemoryUtilization: 0.9,
};

type Waiter<T, R> = { need: T; grant: (granted: R) => void };

/** A FIFO admission queue over counted resources; the head blocks the rest, as in vLLM's FCFS scheduler. */
function createAdmission<T, R>(fits: (need: T) => boolean, take: (need: T) => R) {
  const queue: Waiter<T, R>[] = [];
  function pump(): void {
    while (queue.length > 0 && fits(queue[0].need)) {
      const w = queue.shift()!;
      w.grant(take(w.need));
    }
  }
  return {
    get waiting() {
      return queue.length;
    },
    pump,
    async acquire(need: T, signal: AbortSignal): Promise<R> {
      signal.throwIfAborted();
      if (queue.length === 0 && fits(need)) return take(need);
      return new Promise<R>((resolve, reject) => {
        const w: Waiter<T, R> = {
          need,
          grant: (granted) => {
            signal.removeEventListener('abort', onAbort);
            resolve(granted);
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

type Clock = {
  mono: () => number;
  pause: (ms: number, signal: AbortSignal) => Promise<void>;
};

/**
 * The generating side of the GPU: batch slots, the KV cache's blocks with
 * their cached prefixes, one prefill at a time, and decoding on the token clock.
 */
function createBatch(opts: EngineOptions, { mono, pause }: Clock) {
  const tokenMs = 1000 / opts.tokensPerSecond;
  const knee = opts.batchKnee ?? opts.maxRunning;
  const capacityBlocks = opts.kvCacheTokens === undefined ? Number.POSITIVE_INFINITY : Math.floor(opts.kvCacheTokens / BLOCK_TOKENS);
  const cache = createPrefixCache({ capacityBlocks, enabled: opts.prefixCache ?? ENGINE_DEFAULTS.prefixCache });
  const prefillMsPerToken = 1000 / (opts.prefillTokensPerSecond ?? ENGINE_DEFAULTS.prefillTokensPerSecond);
  const prefillSlowdown = opts.prefillDecodeSlowdown ?? ENGINE_DEFAULTS.prefillDecodeSlowdown;
  let running = 0;
  let prefilling = 0;
  let counted = { queries: 0, hits: 0 };

  const seqs = createAdmission<BlockRequest, Allocation>(
    (r) => running < opts.maxRunning && cache.fits(r),
    (r) => {
      running++;
      const held = cache.take(r);
      counted.queries += r.promptTokens;
      counted.hits += held.cachedTokens;
      return held;
    },
  );
  // Prefill is one FIFO server: a prompt's uncached tokens are computed after those of the prompts admitted before it.
  const prefills = createAdmission(
    () => prefilling === 0,
    () => void prefilling++,
  );

  async function prefill(ms: number, signal: AbortSignal): Promise<void> {
    if (!(ms > 0)) return;
    await prefills.acquire(undefined, signal);
    try {
      await pause(ms, signal);
    } finally {
      prefilling--;
      prefills.pump();
    }
  }

  /** One decode interval now: slowed past the knee by the batch, and while a prefill runs by its share of each step. */
  const interval = () => tokenMs * batchSlowdown(running, knee) * (prefilling > 0 ? prefillSlowdown : 1);

  return {
    kvCacheTokens: capacityBlocks * BLOCK_TOKENS,
    get running() {
      return running;
    },
    get waiting() {
      return seqs.waiting;
    },
    /** A restart: the cache empties and the counters start again from 0 (a scraper sees them go back). */
    reset() {
      cache.clear();
      counted = { queries: 0, hits: 0 };
    },
    gauges() {
      const finite = Number.isFinite(capacityBlocks) && capacityBlocks > 0;
      return {
        // A full batch blocks admission as surely as a full cache, so either reads as full.
        kvCacheUsage: Math.min(1, Math.max(running / opts.maxRunning, finite ? cache.used() / capacityBlocks : 0)),
        kvCacheTokensUsed: cache.used() * BLOCK_TOKENS,
        kvCacheTokens: capacityBlocks * BLOCK_TOKENS,
        prefixCacheQueries: counted.queries,
        prefixCacheHits: counted.hits,
      };
    },
    async *generate(n: number, signal: AbortSignal, prompt: Prompt = { tokens: 0 }, admitted?: (a: Admission) => void) {
      const req: BlockRequest = { promptTokens: prompt.tokens, hashes: prompt.hashes ?? [], decodeTokens: n };
      if (cache.blocksFor(req) > cache.capacity) throw new RangeError(`a sequence of ${prompt.tokens + n} tokens is larger than the KV cache`);
      const held = await seqs.acquire(req, signal);
      try {
        admitted?.({ cachedTokens: held.cachedTokens });
        await prefill((prompt.tokens - held.cachedTokens) * prefillMsPerToken, signal);
        // Token i is due one (load-scaled) interval after token i-1, on a
        // schedule rather than after the last timer: timers drift, the schedule does not.
        let due = mono() + opts.ttftMs;
        for (let i = 0; i < n; i++) {
          if (i > 0) due += interval();
          const wait = due - mono();
          if (wait > 0) await pause(wait, signal);
          signal.throwIfAborted();
          yield tokenText(i);
        }
      } finally {
        running--;
        held.release();
        seqs.pump();
      }
    },
  };
}

export function createEngine(opts: EngineOptions): Engine {
  const now = opts.now ?? Date.now;
  const mono = opts.monotonic ?? (() => performance.now());
  const pause = opts.sleep ?? ((ms: number, signal: AbortSignal) => sleep(ms, undefined, { signal }));
  const embedCallMs = opts.embedCallMs ?? ENGINE_DEFAULTS.embedCallMs;
  const embedPerInputMs = opts.embedPerInputMs ?? ENGINE_DEFAULTS.embedPerInputMs;
  const memTotal = opts.gpuMemoryBytes ?? ENGINE_DEFAULTS.gpuMemoryBytes;
  const memLoaded = Math.round(memTotal * (opts.gpuMemoryUtilization ?? ENGINE_DEFAULTS.gpuMemoryUtilization));
  const batch = createBatch(opts, { mono, pause });
  let readyAt = now() + opts.warmupMs;
  let embedding = 0;

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
    kvCacheTokens: batch.kvCacheTokens,
    ready: () => now() >= readyAt,
    boot() {
      readyAt = now() + opts.warmupMs;
      batch.reset();
    },
    gauges: () => ({
      ...batch.gauges(),
      running: batch.running + embedding,
      waiting: batch.waiting + passes.waiting,
      // vLLM takes its share of device memory at load time (weights + a preallocated KV pool), not per request.
      gpuMemoryUsedBytes: Math.round(memLoaded * loaded()),
      gpuMemoryTotalBytes: memTotal,
    }),
    generate: (n, signal, prompt, admitted) => batch.generate(n, signal, prompt, admitted),
    async embed(inputs, signal) {
      await passes.acquire(undefined, signal);
      try {
        await pause(embedCallMs + inputs * embedPerInputMs, signal);
      } finally {
        embedding--;
        passes.pump();
      }
    },
  };
}
