// The scale bench's knobs (from the environment, see bench/scale.ts), the
// simulated GPU every instance is, the daily-shape load and how the two
// static setups are sized from it.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);

/** A smoke run: 20 s trough, 20 s spike, 20 s trough (each phase still overridable). */
export const SHORT = Boolean(process.env.BENCH_SCALE_SHORT);
export const TROUGH_S = env('BENCH_SCALE_TROUGH_S', SHORT ? 20 : 90);
export const SPIKE_S = env('BENCH_SCALE_SPIKE_S', SHORT ? 20 : 60);
export const TAIL_S = env('BENCH_SCALE_TAIL_S', SHORT ? 20 : 90);
export const DURATION_S = TROUGH_S + SPIKE_S + TAIL_S;
export const SPIKE_START_MS = TROUGH_S * 1000;
export const SPIKE_END_MS = (TROUGH_S + SPIKE_S) * 1000;

/** Requests per second in the trough, and the spike's multiple of it. */
export const TROUGH_RATE = env('BENCH_SCALE_RATE', 10);
export const SPIKE_FACTOR = env('BENCH_SCALE_FACTOR', 4);
export const PEAK_RATE = TROUGH_RATE * SPIKE_FACTOR;
export const AVERAGE_RATE = (TROUGH_RATE * (TROUGH_S + TAIL_S) + PEAK_RATE * SPIKE_S) / DURATION_S;
/** The offered rate at `ms` after the start. */
export const rateAt = (ms: number) => (ms >= SPIKE_START_MS && ms < SPIKE_END_MS ? PEAK_RATE : TROUGH_RATE);

export const MODEL = 'llama-3-8b';
export const MAX_TOKENS = 20;
/** Every instance, configured or started by the scaler: 8 sequences at once, 100 ms to the first token, 50 tokens/s each. */
export const SIM = { maxRunning: 8, ttftMs: 100, tokensPerSecond: 50 };
/** The model load time of an instance the scaler starts. */
export const WARMUP_MS = env('BENCH_SCALE_WARMUP_MS', 5000);
/** One request alone on an instance: the first token at ttft, then one every 1/tps (the prompt's prefill is < 1 ms). */
export const SERVICE_MS = SIM.ttftMs + ((MAX_TOKENS - 1) * 1000) / SIM.tokensPerSecond;
/** The balancer's maxConcurrentPerInstance (= the sim's batch slots, so the balancer queues, not the sim). */
export const SLOTS = SIM.maxRunning;
export const TARGET_UTILIZATION = 0.7;
/** Instances that keep `rate` at TARGET_UTILIZATION of the slots (Little's law: in flight = rate × service time). */
export const instancesFor = (rate: number) => Math.ceil((rate * SERVICE_MS) / 1000 / (SLOTS * TARGET_UTILIZATION) - 1e-9);
export const N_PEAK = env('BENCH_SCALE_N_PEAK', instancesFor(PEAK_RATE));
export const N_AVERAGE = env('BENCH_SCALE_N_AVERAGE', instancesFor(AVERAGE_RATE));

export const SCALE_DOWN_COOLDOWN_MS = env('BENCH_SCALE_DOWN_COOLDOWN_MS', 20_000);
export const SCALE_WINDOW_MS = env('BENCH_SCALE_WINDOW_MS', 20_000);
export const PANIC_WINDOW_MS = env('BENCH_SCALE_PANIC_WINDOW_MS', 2000);

/** Results per bucket of this many ms (by request start); the terminal table has rows of TABLE_EVERY buckets. */
export const BUCKET_MS = 5000;
export const TABLE_EVERY = 2;
/** How often each balancer's /metrics is scraped. */
export const SCRAPE_MS = 250;
/** The client's timeout for one request (headers and body): well past the queue's 60 s. */
export const CLIENT_TIMEOUT_MS = 120_000;
/** Longest wait for the last answers after the last arrival. */
export const DRAIN_S = env('BENCH_SCALE_DRAIN_S', 90);
export const SEED = env('BENCH_SCALE_SEED', 2026);
/** The three setups one after the other instead of side by side (each fed the same schedule). */
export const SEQUENTIAL = Boolean(process.env.BENCH_SCALE_SEQUENTIAL);
/** Only the setups whose key or label contains one of these (comma-separated), e.g. `peak,arus`. */
export const ONLY = process.env.BENCH_SCALE_SETUPS?.split(',').filter(Boolean);

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const OUT_DIR = process.env.BENCH_SCALE_OUT ?? join(ROOT, 'bench', 'out');
export const CHROMIUM = '/usr/bin/chromium';

/** The balancer section every setup runs (the Arus one adds `autoscale`). */
export const balancerSection = (ports: number[]) => ({
  listen: '127.0.0.1:0',
  maxConcurrentPerInstance: SLOTS,
  // The scale-up lag's backlog waits rather than fails.
  maxQueue: 5000,
  queueTimeoutMs: 60_000,
  slowStartMs: 3000,
  instances: ports.map((port, i) => ({ id: `i${i}`, url: `http://127.0.0.1:${port}`, models: [MODEL] })),
});

/** The local scaler's settings for MODEL: from 1 instance up to one more than the peak setup has. */
export const autoscaleSection = () => ({
  [MODEL]: {
    min: 1,
    max: N_PEAK + 1,
    targetUtilization: TARGET_UTILIZATION,
    windowMs: SCALE_WINDOW_MS,
    panicWindowMs: PANIC_WINDOW_MS,
    scaleDownCooldownMs: SCALE_DOWN_COOLDOWN_MS,
    drainTimeoutMs: 30_000,
    intervalMs: 250,
    provider: { kind: 'local' as const, sim: { warmupMs: WARMUP_MS, ...SIM } },
  },
});
