// Data of the regional balancer: instances, their live state, and the picker
// behaviour. Health (ready, ejected) is decided by the pool; a picker only sees
// hosts already filtered by health, and reads weights and gauges as data.

export type RequestKind = 'chat' | 'completion' | 'embeddings';

export type Instance = { id: string; url: string; weight: number; models: readonly string[]; kinds: readonly RequestKind[] };

/** vLLM-style gauges scraped from an instance's `/metrics`. */
export type GpuGauges = {
  running: number;
  waiting: number;
  kvCacheUsage: number /* 0..1 */;
  memoryExhausted: boolean;
  scrapedAt: number;
  /** `vllm:prefix_cache_queries_total` (tokens), when reported: a counter that goes back means a restarted server, its cache empty. */
  prefixQueries?: number;
  /** The KV cache's size in blocks (`vllm:cache_config_info`'s num_gpu_blocks), when reported. */
  kvBlocks?: number;
};

/** The two kinds of work a model server does: decode tokens, or embed inputs. */
export type WorkClass = 'generation' | 'embeddings';

export const workClass = (kind: RequestKind | undefined): WorkClass => (kind === 'embeddings' ? 'embeddings' : 'generation');

/**
 * A generation's prompt as the KV cache sees it (src/prompt/blocks.ts), read
 * for the `prefix` strategy: its full blocks' chained names (a bounded prefix
 * of a huge prompt), its tokens, and the client's affinity hint (the OpenAI
 * `user` field or an `x-session-id` header) when it gives one.
 */
export type PromptKey = { hashes: readonly number[]; tokens: number; affinity?: string };

/** One request in flight to an instance: what it asked for and when it was sent (ms, the pool's clock). */
export type Work = { kind?: RequestKind; /** Generations: the tokens asked for (`max_tokens`). */ tokens?: number; at: number; prompt?: PromptKey };

export type InstanceState = {
  readonly instance: Instance;
  ready: boolean; // active readiness: model loaded
  /** Being scaled down: no new requests; those in flight finish (src/balancer/scale/). */
  draining?: boolean;
  readySince?: number; // for slow start
  ejectedUntil?: number; // passive outlier detection
  ejections: number; // consecutive ejections (back-off grows)
  consecutiveFailures: number;
  outstanding: number;
  ewmaMs?: number; // response time EWMA, every kind
  /** Response time EWMA per work class, per unit: ms per requested token for generations, ms per call for embeddings. */
  unitEwma?: Partial<Record<WorkClass, number>>;
  /**
   * Service time per unit with little or no queueing: a low quantile of the
   * recent per-unit samples (ms per token, ms per embeddings call).
   */
  unitMs?: Partial<Record<WorkClass, number>>;
  /** Requests this balancer has in flight to the instance, oldest first (`outstanding` counts them too). */
  inflight?: Work[];
  /** Sequences the instance runs at once, read from gauges taken while it was full (KV cache full or requests waiting). */
  slots?: number;
  /** This balancer's `outstanding` when `gpu` was scraped: the gauges' excess over it is load from elsewhere. */
  outstandingAtScrape?: number;
  gpu?: GpuGauges;
};

/**
 * What a picker knows about the request. `now` and `random` come in so that
 * pickers stay deterministic under test; `slowStartMs` is set by the pool
 * (its own option) and overrides the picker's default.
 */
export type PickContext = {
  model?: string;
  kind?: RequestKind;
  /** Generations: tokens asked for (`max_tokens`), when the request says. */
  tokens?: number;
  /** The prompt, read only when the picker asks for it (`wantsPrompt`). */
  prompt?: PromptKey;
  now: number;
  random: () => number;
  slowStartMs?: number;
};

export interface Picker {
  readonly name: string;
  pick(candidates: readonly InstanceState[], ctx: PickContext): InstanceState | undefined;
  /** The request's prompt is read for it (`PickContext.prompt`): the `prefix` strategy. */
  readonly wantsPrompt?: boolean;
  /** A request was sent to `s`: what it expects `s` to have cached of its prompt (tokens). */
  sent?(s: InstanceState, work: Work): number | undefined;
  /** That request ended (answered, failed, or its client left): the load it was counted for is released. */
  ended?(s: InstanceState, work: Work, now: number): void;
  /** What the picker knows of an instance is wrong now: it left, restarted or lost its cache. */
  forget?(id: string): void;
  /** The pool's instances now (others are forgotten). */
  setInstances?(ids: readonly string[]): void;
  /** An instance's KV cache holds this many blocks: no more of it is worth remembering. */
  cacheBlocks?(id: string, blocks: number): void;
  /** The `prefix` strategy's index and decisions, for /metrics. */
  prefixStats?(): PrefixStats;
}

/**
 * How the `prefix` strategy decided: by cache, spread off a busy cache holder,
 * by consistent hash on the client's hint (nothing cached), a new prompt
 * (nothing cached, no hint) by cache room and expected start, by load (no prompt).
 */
export const PREFIX_DECISIONS = ['cache', 'spread', 'hash', 'new', 'load'] as const;
export type PrefixDecision = (typeof PREFIX_DECISIONS)[number];

export type PrefixStats = {
  entries: number;
  capacity: number;
  bytes: number;
  /** Prompt tokens of the requests sent, and the tokens the index expected cached. */
  promptTokens: number;
  predictedHitTokens: number;
  decisions: Record<PrefixDecision, number>;
};

export type Strategy = 'round-robin' | 'weighted' | 'least-outstanding' | 'latency' | 'gpu' | 'prefix';
