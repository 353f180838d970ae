// Prefix-cache-aware balancing benchmark (issue 19): every contender in front
// of the same 4 simulated GPU instances with limited KV caches, on three
// workloads, in one run.
//
//   npm run bench:prefix
//
// Workloads (seeded: the same texts, arrivals, think times and answer lengths
// for every contender; open-loop arrivals; every request a streamed chat
// completion, TTFT = time to the first SSE data chunk carrying content):
//   multi-turn  4 shared system prompts of 2k tokens; conversations of 5–10
//               turns (users 100–400 tokens, answers 32–96), think time
//               exponential with mean 2 s, each turn resending the whole
//               history; the conversation id in `x-session-id` and `user`.
//               Conversations start as a Poisson process; each turn follows
//               the answer to the one before.
//   rag         32 shared documents of 3k tokens drawn Zipf (s = 1), each with
//               a short question (12–40 tokens); answers 16–48 tokens. Each
//               document is asked about once (answered) before the schedule
//               starts: a service in production has seen its documents.
//   hot-prefix  one 2k-token system prompt in 80 % of requests (then a short
//               question), the rest unique prompts of 1–3k tokens.
// A warm-up (20 s multi-turn, 5 s the others) is sent but left out of the
// figures; the measured window is BENCH_SECONDS; no turn is sent after it,
// and its requests are drained (BENCH_DRAIN_SECONDS at most, then counted
// as errors).
//
// Fleet (bench/prefix/settings.ts): 4 sims, 16 sequences each at 50 tokens/s,
// 25 ms fixed before the first token plus the prefill of the uncached prompt
// tokens at BENCH_PREFILL_TPS (a quarter of the sim's default, 20 000: the
// same fleet at a quarter of the request rate, so that two cores drive it
// without the load generator or the proxies becoming the bottleneck; the
// Arus `prefix` balancer is told the same speed). KV cache per instance sized
// per workload so that one instance cannot hold every shared prefix and the
// fleet can (multi-turn 48k tokens, RAG 32k, hot-prefix 32k). Fresh sims
// (empty caches) for every contender and workload. Rates (settings.ts: how
// they were calibrated): the cache-blind reference, HAProxy leastconn, runs
// its prefill at about BENCH_LOAD (0.85) of the fleet's: multi-turn 32
// turns/s in steady state (the window sees about 16–21), RAG 13.6/s,
// hot-prefix 36/s; BENCH_RATE_MULTI_TURN / BENCH_RATE_RAG /
// BENCH_RATE_HOT_PREFIX override.
//
// Contenders: Arus `prefix`, `gpu`, `round-robin` (balancer child processes;
// maxConcurrentPerInstance BENCH_ARUS_MAX_CONCURRENT, 256, so that Arus queues
// no more than HAProxy does); HAProxy `balance leastconn` and
// `balance hdr(x-session-id)` + `hash-type consistent` + `hash-balance-factor
// 125` (Debian's /usr/sbin/haproxy, nbthread BENCH_HAPROXY_THREADS, 1,
// `option http-no-delay` so that streamed tokens are not held; RAG and
// hot-prefix requests carry no session, so it balances those round-robin);
// "sglang-cache_aware (re-implementation)", SGLang's router `cache_aware`
// policy as its documentation describes it (bench/prefix/sglang.ts; source:
// sgl-project/sglang docs/router/router.md, "Cache-Aware Load-Balancing
// Router", https://docs.sglang.ai/router/router.html: a per-worker
// approximate radix tree over the request text, cache_threshold 0.5,
// balance_abs_threshold 32, balance_rel_threshold 1.0001, LRU eviction of the
// trees by size every 60 s past 16 777 216 characters) as a Node proxy child
// process; and an oracle: each conversation, document or prompt group pinned
// by hash to one sim, no load limit, sent straight there by the client: the
// upper bound of the hit rate (not of latency: on hot-prefix it sends 80 %
// of the load to one instance). A contender whose prerequisite this tree
// lacks (the `prefix` strategy in STRATEGIES) is reported as not available in
// this tree; without the sims' prefix cache (no cached_tokens) hit rates
// read n/a and the hit-rate targets are not available.
//
// Reported per workload × contender: requests sent in the window, TTFT
// p50/p99, end-to-end p99, answered/s (from the window's start to the later
// of its end and the last answer), errors, the hit rate the sims measured
// (Δ vllm:prefix_cache_hits_total / Δ vllm:prefix_cache_queries_total over
// the window, summed over the 4 sims) and the busiest instance's share;
// medians over BENCH_RUNS (1). Then the issue's targets, MET or MISSED with
// their figures, and any request an Arus contender lost (the bench then
// exits 1).
//
// Environment: BENCH_SECONDS (10), BENCH_RUNS (1), BENCH_ONLY (workloads,
// comma-separated: multi-turn,rag,hot-prefix), BENCH_SETUPS (contender label
// substrings, comma-separated), BENCH_LOAD, BENCH_RATE_*, BENCH_PREFILL_TPS,
// BENCH_KV_MULTI_TURN / _RAG / _HOT_PREFIX, BENCH_WARMUP_MULTI_TURN / _RAG /
// _HOT_PREFIX, BENCH_DRAIN_SECONDS (30), BENCH_HAPROXY_THREADS,
// BENCH_ARUS_MAX_CONCURRENT, BENCH_VERBOSE. The whole bench takes about 10
// minutes on 2 cores.
//
// The parts live in bench/prefix/: settings, workloads, client (one streamed
// request), run (one workload against one contender), contenders, haproxy,
// sglang + radix-tree (the re-implementation), children + serve (the child
// processes) and report.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { sleep } from './common.js';
import { child } from './prefix/children.js';
import { contenders, type Contender } from './prefix/contenders.js';
import { printLost, printTables, printTargets, type Results } from './prefix/report.js';
import { runWorkload, type RunResult } from './prefix/run.js';
import { serve } from './prefix/serve.js';
import { FLEET, KV_TOKENS, MODEL, MULTI_TURN, ONLY, RATES, RUNS, SECONDS, WORKLOADS, HOT, RAG, type WorkloadName } from './prefix/settings.js';
import { offered, workload } from './prefix/workloads.js';

const WARMUP: Record<WorkloadName, number> = { 'multi-turn': MULTI_TURN.warmupSeconds, rag: RAG.warmupSeconds, 'hot-prefix': HOT.warmupSeconds };

/** Whether a sim reports usage.prompt_tokens_details.cached_tokens (the prefix cache is in this tree). */
async function simCaches(port: number): Promise<boolean> {
  const body = { model: MODEL, messages: [{ role: 'user', content: 'ping' }], max_tokens: 1 };
  const r = await request(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await r.body.json()) as { usage?: { prompt_tokens_details?: { cached_tokens?: unknown } } };
  return typeof json.usage?.prompt_tokens_details?.cached_tokens === 'number';
}

function printPlan(list: Contender[], names: WorkloadName[]): void {
  console.log(`Arus prefix benchmark: ${RUNS} run(s); ${names.join(', ')}; ${SECONDS} s measured per workload and contender`);
  console.log(
    `fleet: ${FLEET.instances} sims × ${FLEET.maxRunning} sequences at ${FLEET.tokensPerSecond} tok/s, ttft ${FLEET.ttftMs} ms + prefill at ${FLEET.prefillTokensPerSecond} tok/s; ` +
      `KV per instance ${names.map((n) => `${n} ${KV_TOKENS[n]}`).join(', ')} tokens`,
  );
  for (const n of names) {
    const w = workload(n, WARMUP[n] + SECONDS);
    console.log(`  ${n}: ${RATES[n].toFixed(2)} requests/s offered (${offered(w)} over ${WARMUP[n]} s warm-up + ${SECONDS} s)`);
  }
  console.log(`contenders: ${list.map((c) => c.label + (c.missing ? ' (not available in this tree)' : '')).join(', ')}\n`);
}

function line(run: number, w: WorkloadName, label: string, r: RunResult): string {
  const hit = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)} %` : 'n/a');
  return (
    `run ${run} ${w.padEnd(10)} ${label.padEnd(40)} TTFT p50 ${r.ttft.p50.toFixed(0)} p99 ${r.ttft.p99.toFixed(0)} ms, e2e p99 ${r.e2e.p99.toFixed(0)} ms, ` +
    `${r.throughput.toFixed(2)}/s (${r.answered}/${r.sent}), hit ${hit(r.hitRate)} (answers say ${hit(r.clientHitRate)}; ${r.uncachedPerRequest.toFixed(0)} tokens computed per request), ` +
    `per instance ${JSON.stringify(r.spread)}` +
    (r.errors ? `, errors ${r.errors} ${JSON.stringify(r.statuses)}` : '')
  );
}

async function bench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'arus-bench-prefix-'));
  const list = contenders();
  const names = WORKLOADS.filter((w) => !ONLY || ONLY.includes(w));
  printPlan(list, names);
  const results: Results = {};
  const cleanup: (() => Promise<void>)[] = [];
  let cacheChecked = false;
  try {
    for (let run = 1; run <= RUNS; run++) {
      for (const name of names) {
        const w = workload(name, WARMUP[name] + SECONDS);
        // Every other run in reverse order: slow drift of a shared machine should not favour one contender.
        const order = (run % 2 ? list : [...list].reverse()).filter((c) => !c.missing);
        for (const c of order) {
          const sims = await child('sims', { kvCacheTokens: KV_TOKENS[name] });
          cleanup.push(sims.stop);
          const ports = sims.info.ports as number[];
          if (!cacheChecked) {
            cacheChecked = true;
            if (!(await simCaches(ports[0]))) console.log('sim prefix cache: not available in this tree (no usage.prompt_tokens_details.cached_tokens): hit rates read n/a\n');
          }
          const s = await c.start(dir, ports);
          cleanup.push(s.stop);
          try {
            const r = await runWorkload(w, s.route, ports, WARMUP[name]);
            ((results[name] ??= {})[c.label] ??= []).push(r);
            console.log(line(run, name, c.label, r));
          } finally {
            await s.stop();
            cleanup.pop();
            await sims.stop();
            cleanup.pop();
          }
          await sleep(300);
        }
      }
    }
  } finally {
    for (const stop of cleanup.reverse()) await stop();
    rmSync(dir, { recursive: true, force: true });
  }
  printTables(results, list);
  printTargets(results, list);
  const lost = printLost(results, list);
  if (lost) {
    console.log(`\n${lost} request(s) lost by Arus contenders: failing`);
    process.exitCode = 1;
  }
}

if (process.argv[2] === '--serve') await serve(process.argv[3], JSON.parse(process.argv[4] ?? 'null'));
else await bench();
