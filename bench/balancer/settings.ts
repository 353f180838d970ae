// The balancer bench's knobs (from the environment, see bench/balancer.ts) and
// the simulated fleet every setup is measured in front of.

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
export const SECONDS = env('BENCH_SECONDS', 20);
export const RUNS = env('BENCH_RUNS', 1);
export const LOAD = env('BENCH_LOAD', 0.75);
export const EMBED_RATE = env('BENCH_EMBED_RATE', 10);
export const DRAIN_SECONDS = env('BENCH_DRAIN_SECONDS', 60);
export const WARMUP_SECONDS = env('BENCH_WARMUP_SECONDS', 5);
export const CONCURRENCY = env('BENCH_CONCURRENCY', 64);
export const HAPROXY_THREADS = env('BENCH_HAPROXY_THREADS', 1);
export const ONLY = process.env.BENCH_ONLY;
/** Only the setups whose label contains one of these (comma-separated), e.g. `gpu,leastconn`. */
export const SETUPS = process.env.BENCH_SETUPS?.split(',').filter(Boolean);
/** Arus's maxConcurrentPerInstance; the document's default (16) unless set. */
export const ARUS_MAX_CONCURRENT = process.env.BENCH_ARUS_MAX_CONCURRENT ? Number(process.env.BENCH_ARUS_MAX_CONCURRENT) : undefined;

export const MODEL = 'llama-3-8b';
export const EMBED_MODEL = 'bge-small';
export const EMBED_CONCURRENCY = env('BENCH_EMBED_CONCURRENCY', 64);
export const BATCH_WINDOW_MS = env('BENCH_BATCH_WINDOW_MS', 5);
export const BATCH_MAX = env('BENCH_BATCH_MAX', 32);
export const SIMS = [
  { id: 'slow', tokensPerSecond: 40 },
  { id: 'mid', tokensPerSecond: 80 },
  { id: 'fast', tokensPerSecond: 160 },
].map((s) => ({ ...s, maxRunning: 4, ttftMs: 50 }));
export const MIN_TOKENS = 80;
export const MAX_TOKENS = 400;
/** Fleet decode throughput (tokens/s) with every slot busy. */
export const FLEET_TPS = SIMS.reduce((sum, s) => sum + s.tokensPerSecond * s.maxRunning, 0);
const MEAN_TOKENS = (MIN_TOKENS + MAX_TOKENS) / 2;
export const GEN_RATE = (LOAD * FLEET_TPS) / MEAN_TOKENS;
