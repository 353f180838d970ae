// The prefix bench's knobs (from the environment, see bench/prefix.ts), the
// simulated fleet every contender is measured in front of, and each
// workload's shape, cache size and offered rate.
import { SIM_DEFAULTS } from '../../src/sim/server.js';

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const list = (name: string) => process.env[name]?.split(',').map((s) => s.trim()).filter(Boolean);

/** Measured seconds per workload and contender (after the workload's warm-up). */
export const SECONDS = env('BENCH_SECONDS', 10);
export const RUNS = env('BENCH_RUNS', 1);
/** Longest wait for the measured requests still in flight once the window closes. */
export const DRAIN_SECONDS = env('BENCH_DRAIN_SECONDS', 30);
/** Only these workloads (comma-separated names: multi-turn, rag, hot-prefix). */
export const ONLY = list('BENCH_ONLY');
/** Only the contenders whose label contains one of these (comma-separated substrings). */
export const SETUPS = list('BENCH_SETUPS');
/** Arus's maxConcurrentPerInstance: above what the open loop ever holds on one instance, so that Arus, like HAProxy without maxconn, adds no queue (nor its 5 s queue timeout) of its own. */
export const ARUS_MAX_CONCURRENT = env('BENCH_ARUS_MAX_CONCURRENT', 256);
export const VERBOSE = Boolean(process.env.BENCH_VERBOSE);

export const MODEL = 'llama-3-8b';

/** The sims' own prefill default, once the sim has one (src/sim/README.md says which vLLM figure it comes from). */
const simPrefill = (SIM_DEFAULTS as Record<string, unknown>).prefillTokensPerSecond;
const SIM_PREFILL = typeof simPrefill === 'number' ? simPrefill : 20_000;

/**
 * The fleet: 4 instances, each decoding 16 sequences at 50 tokens/s (the
 * sim's per-sequence default) with a fixed 25 ms before the first token, plus
 * the prefill of the prompt's uncached tokens. Prefill runs at a quarter of
 * the sim's default speed (BENCH_PREFILL_TPS; the sim's 20 000 tokens/s gives
 * 5 000): the same fleet at a quarter of the request rate, so that two cores
 * drive it without the load generator or the proxies becoming the bottleneck
 * (at 57 requests/s Arus's own CPU already showed in its p99 here).
 */
export const FLEET = {
  instances: 4,
  maxRunning: 16,
  tokensPerSecond: 50,
  ttftMs: 25,
  prefillTokensPerSecond: env('BENCH_PREFILL_TPS', Math.round(SIM_PREFILL / 4)),
};

export const WORKLOADS = ['multi-turn', 'rag', 'hot-prefix'] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

/** Multi-turn chat: conversations over a few shared system prompts, each turn resending the whole history. */
export const MULTI_TURN = {
  systemPrompts: 4,
  systemTokens: 2048,
  minTurns: 5,
  maxTurns: 10,
  /** User turns, tokens (uniform). */
  userTokens: [100, 400] as const,
  /** Answers, tokens (uniform). */
  answerTokens: [32, 96] as const,
  thinkMeanMs: 2000,
  // Conversations last about 35 s, so the turn rate is still rising through the window; longer would cost minutes per contender.
  warmupSeconds: env('BENCH_WARMUP_MULTI_TURN', 20),
};

/** RAG: shared documents drawn with a Zipf skew, each followed by a short question. */
export const RAG = {
  documents: 32,
  documentTokens: 3072,
  zipfS: 1,
  questionTokens: [12, 40] as const,
  answerTokens: [16, 48] as const,
  warmupSeconds: env('BENCH_WARMUP_RAG', 5),
};

/** Hot prefix: one system prompt in 80 % of requests (then a short question), the rest unique prompts. */
export const HOT = {
  hotShare: 0.8,
  systemTokens: 2048,
  questionTokens: [12, 40] as const,
  uniqueTokens: [1024, 3072] as const,
  answerTokens: [16, 64] as const,
  warmupSeconds: env('BENCH_WARMUP_HOT_PREFIX', 5),
};

/**
 * Each workload's KV cache per instance (tokens), chosen so that one instance
 * cannot hold every shared prefix of the workload and the fleet can. RAG: its
 * 32 documents are 96k tokens; 32k per instance (the sim's default), 128k for
 * the fleet. Multi-turn: the live prefixes are the 4 system prompts (8k) and
 * every live conversation's history, which at the default rate grows through
 * the window from about 60k to 120k tokens (75–115 conversations, counted on
 * the schedule with 2.5 s per answer); 48k per instance, 192k for the fleet.
 * Hot prefix: its one shared prompt fits anywhere, the unique prompts are
 * never reused; 32k.
 */
export const KV_TOKENS: Record<WorkloadName, number> = {
  'multi-turn': env('BENCH_KV_MULTI_TURN', 49_152),
  rag: env('BENCH_KV_RAG', 32_768),
  'hot-prefix': env('BENCH_KV_HOT_PREFIX', 32_768),
};

/**
 * Offered rates, requests/s (multi-turn: the steady-state turn rate;
 * conversations start at rate / 7.5 turns, and as they last about 35 s the
 * window sees roughly half to two thirds of it, rising). Calibrated at 5 000
 * prefill tokens/s per instance (20 000 for the fleet) against HAProxy
 * leastconn, the cache-blind reference, so that its prefill runs at about
 * BENCH_LOAD (0.85) of the fleet's: what the sims computed for it per request
 * (Δ queries − Δ hits over answers) was multi-turn 810–980 tokens at 16–17.5
 * answers/s in the window (70–80 %), RAG 1 160–1 270 at 13.6/s (80–85 %),
 * hot-prefix 410–420 at 36/s (75 %); decode, slowed 2× while a prefill runs,
 * takes the rest. Cache-aware contenders compute far less at the same rates.
 * The rates scale with BENCH_LOAD / 0.85 and with BENCH_PREFILL_TPS / 5 000;
 * BENCH_RATE_MULTI_TURN, BENCH_RATE_RAG and BENCH_RATE_HOT_PREFIX override.
 */
export const LOAD = env('BENCH_LOAD', 0.85);
const CALIBRATED: Record<WorkloadName, number> = { 'multi-turn': 32, rag: 13.6, 'hot-prefix': 36 };
const scale = (LOAD / 0.85) * (FLEET.prefillTokensPerSecond / 5000);
export const RATES: Record<WorkloadName, number> = {
  'multi-turn': env('BENCH_RATE_MULTI_TURN', CALIBRATED['multi-turn'] * scale),
  rag: env('BENCH_RATE_RAG', CALIBRATED.rag * scale),
  'hot-prefix': env('BENCH_RATE_HOT_PREFIX', CALIBRATED['hot-prefix'] * scale),
};
