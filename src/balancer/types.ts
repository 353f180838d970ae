// Data of the regional balancer: instances, their live state, and the picker
// behaviour. Health (ready, ejected) is decided by the pool; a picker only sees
// hosts already filtered by health, and reads weights and gauges as data.

export type RequestKind = 'chat' | 'completion' | 'embeddings';

export type Instance = { id: string; url: string; weight: number; models: readonly string[]; kinds: readonly RequestKind[] };

/** vLLM-style gauges scraped from an instance's `/metrics`. */
export type GpuGauges = { running: number; waiting: number; kvCacheUsage: number /* 0..1 */; memoryExhausted: boolean; scrapedAt: number };

export type InstanceState = {
  readonly instance: Instance;
  ready: boolean; // active readiness: model loaded
  readySince?: number; // for slow start
  ejectedUntil?: number; // passive outlier detection
  ejections: number; // consecutive ejections (back-off grows)
  consecutiveFailures: number;
  outstanding: number;
  ewmaMs?: number; // response time EWMA
  gpu?: GpuGauges;
};

/**
 * What a picker knows about the request. `now` and `random` come in so that
 * pickers stay deterministic under test; `slowStartMs` is set by the pool
 * (its own option) and overrides the picker's default.
 */
export type PickContext = { model?: string; kind?: RequestKind; now: number; random: () => number; slowStartMs?: number };

export interface Picker {
  readonly name: string;
  pick(candidates: readonly InstanceState[], ctx: PickContext): InstanceState | undefined;
}

export type Strategy = 'round-robin' | 'weighted' | 'least-outstanding' | 'latency' | 'gpu';
