// Regional balancer benchmark: Arus's balancer (each strategy) against Debian's
// HAProxy (`balance roundrobin`, `balance leastconn`) in front of the same
// simulated GPU instances of unequal speed, at a fixed offered load; then a
// proxy-overhead run against a 1-ms backend.
//
//   npm run bench:balancer
//
// Environment: BENCH_SECONDS (20, per run), BENCH_RUNS (1, median reported),
// BENCH_LOAD (0.75: offered generation load as a share of the fleet's token
// throughput), BENCH_EMBED_RATE (10 embedding calls/s), BENCH_DRAIN_SECONDS
// (60: longest wait for the last requests after the arrivals stop),
// BENCH_CONCURRENCY (64: closed-loop clients of the overhead run),
// BENCH_HAPROXY_THREADS (1: nbthread, as Arus runs on one event loop),
// BENCH_ARUS_MAX_CONCURRENT (the balancer document's maxConcurrentPerInstance;
// its default, 16, in the mixed runs, and BENCH_CONCURRENCY in the overhead run,
// where HAProxy's servers have no maxconn and neither proxy should queue),
// BENCH_ONLY (mixed | overhead | batching), BENCH_SETUPS (labels to run, comma-separated
// substrings), BENCH_WARMUP_SECONDS (5: the same warm-up schedule for every setup
// before each measured mixed run), BENCH_EMBED_CONCURRENCY (64: closed-loop
// clients of the batching run), BENCH_BATCH_WINDOW_MS (5), BENCH_BATCH_MAX (32),
// BENCH_VERBOSE (print the slowest requests of each mixed run), BENCH_CPU_PROF
// (a directory: each Arus child writes a V8 CPU profile there when stopped),
// BENCH_ARUS_NODE_FLAGS (extra node flags for the Arus children, e.g. --single-threaded-gc).
//
// Every process listens on 127.0.0.1 on a free port: the sims, the tiny
// 1-ms backend and each Arus balancer run as child processes of this script
// (so the load generator here does not share their event loop), HAProxy as
// `haproxy -f <temp cfg> -db`. All are stopped at the end.
//
// Mixed workload (open loop: arrivals follow a seeded Poisson schedule, the
// same for every setup, whatever the completions): generations
// (`/v1/chat/completions`, not streamed, max_tokens uniform in 80..400, i.e.
// 1–5 s on the middle instance) and single-input embedding calls. Instances:
// 40, 80 and 160 tokens/s, 4 sequences each, ttft 50 ms. Latency is the time
// to the whole response; p99 over all answered requests (embeddings are about
// three in four, so it is about the generations' p96) and per kind; done/s is
// answered requests / seconds from the first arrival to the last answer.
// The schedule and the sims are deterministic, so runs differ only by timing
// noise; at 10–20 s a run holds 35–70 generations, and their p99 is close to
// their maximum.
//
// The parts live in bench/balancer/: settings (the knobs and the fleet),
// children and serve (the child processes from outside and inside), haproxy,
// load (the load generators), setups, phases (the three parts) and report.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { schedule, type Arrival, type LoopResult, type MixedResult } from './balancer/load.js';
import { runBatching, runMixed, runOverhead, type OverheadResult, type PhaseContext } from './balancer/phases.js';
import { printBatching, printMixed, printOverhead } from './balancer/report.js';
import { serve } from './balancer/serve.js';
import { EMBED_RATE, FLEET_TPS, GEN_RATE, LOAD, MAX_TOKENS, MIN_TOKENS, ONLY, RUNS, SECONDS, SIMS, WARMUP_SECONDS } from './balancer/settings.js';

function printPlan(arrivals: Arrival[]): void {
  const gens = arrivals.filter((a) => a.kind === 'chat').length;
  console.log(`Arus balancer benchmark: ${RUNS} run(s) of ${SECONDS} s per setup`);
  console.log(
    `instances: ${SIMS.map((s) => `${s.id} ${s.tokensPerSecond} tok/s × ${s.maxRunning}`).join(', ')}, ttft 50 ms; fleet ${FLEET_TPS} tok/s\n` +
      `offered: ${GEN_RATE.toFixed(2)} generations/s (max_tokens ${MIN_TOKENS}..${MAX_TOKENS}, ${Math.round(LOAD * 100)} % of fleet tokens/s if spread by speed) + ${EMBED_RATE} embeddings/s, Poisson, open loop; ${gens} generations + ${arrivals.length - gens} embeddings per run\n`,
  );
}

async function bench(): Promise<void> {
  const haproxy = !spawnSync('haproxy', ['-v']).error;
  if (!haproxy) console.log('haproxy not found on PATH (Debian: apt-get install haproxy): the HAProxy columns and ratios are skipped');
  const ctx: PhaseContext = { dir: mkdtempSync(join(tmpdir(), 'arus-bench-balancer-')), haproxy, cleanup: [] };
  const arrivals = schedule(SECONDS);
  const warmup = schedule(WARMUP_SECONDS, 7);
  printPlan(arrivals);
  let mixed: Record<string, MixedResult[]> = {};
  let over: Record<string, OverheadResult[]> = {};
  let batch: Record<string, LoopResult[]> = {};
  try {
    if (!ONLY || ONLY === 'mixed') mixed = await runMixed(ctx, arrivals, warmup);
    if (!ONLY || ONLY === 'overhead') over = await runOverhead(ctx);
    if (!ONLY || ONLY === 'batching') batch = await runBatching(ctx);
  } finally {
    for (const stop of ctx.cleanup.reverse()) await stop();
    rmSync(ctx.dir, { recursive: true, force: true });
  }
  printMixed(mixed);
  printOverhead(over);
  printBatching(batch);
}

if (process.argv[2] === '--serve') await serve(process.argv[3], JSON.parse(process.argv[4] ?? 'null'));
else await bench();
