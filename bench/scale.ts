// Scale benchmark: a daily-shape load against one region (a trough, a spike
// of 4× for 60 s, the trough again) in one run, in front of three setups:
// static provisioning for the peak, static for the average, and Arus with
// its local scaler (1 configured instance; `arus sim` processes started and
// drained by the balancer). Reports p50/p99 over time (table, CSV and a PNG
// plot), failed requests and instance-seconds, and the targets MET or MISSED.
//
//   npm run bench:scale                      (90 s + 60 s + 90 s, ~5 minutes)
//   BENCH_SCALE_SHORT=1 npm run bench:scale  (20 s + 20 s + 20 s smoke run)
//
// Environment: BENCH_SCALE_SHORT, BENCH_SCALE_TROUGH_S / _SPIKE_S / _TAIL_S
// (phase lengths), BENCH_SCALE_RATE (10 req/s in the trough), BENCH_SCALE_FACTOR
// (4: the spike's multiple), BENCH_SCALE_WARMUP_MS (5000: a started instance's
// model load), BENCH_SCALE_DOWN_COOLDOWN_MS (20000), BENCH_SCALE_WINDOW_MS
// (20000), BENCH_SCALE_PANIC_WINDOW_MS (2000), BENCH_SCALE_N_PEAK /
// _N_AVERAGE (override the derived fleet sizes), BENCH_SCALE_RUNS (1; medians
// over runs), BENCH_SCALE_SEQUENTIAL (the setups one after the other instead
// of side by side), BENCH_SCALE_SETUPS (e.g. `peak,arus`), BENCH_SCALE_SEED,
// BENCH_SCALE_DRAIN_S (90), BENCH_SCALE_OUT (bench/out).
//
// Processes: each setup is a child running startBalancer (src/balancer/role.ts)
// and a child of its configured simulated GPUs (createSimServer), all on
// 127.0.0.1 and free ports; the Arus balancer's scaler starts `arus sim`
// children of its own (bin/arus.js: dist/ when fresh, so the bench builds it
// first). The load generator and the /metrics scrapes run here. By default
// the three setups run at the same time, fed the same arrivals at the same
// instants, so a noisy machine's hiccups hit all alike. Every child is stopped
// at the end, on a failure and on Ctrl-C, and the bench checks no `arus sim` is left.
//
// Load: open-loop Poisson arrivals (seeded) at r(t); non-streamed
// POST /v1/chat/completions, max_tokens 20 (~0.48 s alone on an instance of
// 8 slots, 100 ms to the first token, 50 tokens/s). A failure is a non-2xx,
// an error, or no answer within the drain. Instance-seconds: the static
// setups' count × the run; Arus's the integral of the pool's
// arus_balancer_pool_current_instances gauge (warming, serving and draining
// instances: each holds a GPU), scraped every 250 ms.
//
// The parts live in bench/scale/: settings, serve (the children inside),
// setups (them from outside), load, scrape, analyze, report and plot.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CORES, startCpuSampler, type CpuSample } from './scale/cpu.js';
import { buckets, lagEnd, summarize, type SetupResult, type Summary } from './scale/analyze.js';
import { run, schedule } from './scale/load.js';
import { svg, writePlot } from './scale/plot.js';
import { printAsserts, printEvents, printSummary, printTable, printTargets, readEvents, targetsOf, writeCsv, writeFleetCsv, type Targets } from './scale/report.js';
import { startScraper } from './scale/scrape.js';
import { serve } from './scale/serve.js';
import { specs, startSetup, type RunningSetup, type SetupSpec } from './scale/setups.js';
import * as S from './scale/settings.js';

const RUNS = process.env.BENCH_SCALE_RUNS ? Number(process.env.BENCH_SCALE_RUNS) : 1;
const LOG_FILE = join(S.OUT_DIR, 'scale-arus-balancer.log');

async function distState(): Promise<string> {
  const mod = new URL('../bin/dist.mjs', import.meta.url).href;
  return ((await import(mod)) as { distState(): string }).distState();
}

/** Whether the source has the local scaler and its pool gauges; without them the Arus setup is a stand-in (no autoscale). */
function scalerPresent(): boolean {
  const read = (p: string) => (existsSync(join(S.ROOT, p)) ? readFileSync(join(S.ROOT, p), 'utf8') : '');
  return read('src/balancer/metrics.ts').includes('arus_balancer_pool_current_instances') && existsSync(join(S.ROOT, 'src/balancer/scale/local.ts'));
}

/** `npm run build` unless dist/ is fresh: the scaler's `arus sim` runs dist/ then, else the sources through tsx (slower to start). */
async function ensureBuilt(): Promise<void> {
  const state = await distState();
  if (state === 'fresh') return void console.log("dist/: fresh (the scaler's `arus sim` runs it)");
  console.log(`dist/: ${state}; npm run build …`);
  const r = spawnSync('npm', ['run', 'build'], { cwd: S.ROOT, encoding: 'utf8' });
  if (r.status === 0) console.log('dist/: built');
  else
    console.log(
      `npm run build failed (${r.status}); the scaler's \`arus sim\` runs the sources through tsx, which starts slower (counted in the lag):\n` +
        `${r.stdout}${r.stderr}`.trim().split('\n').slice(-8).join('\n'),
    );
}

function printPlan(autoscale: boolean, arrivals: number[]): void {
  const svc = S.SERVICE_MS / 1000;
  console.log(`Arus scale benchmark: ${S.TROUGH_S} s trough at ${S.TROUGH_RATE} req/s, ${S.SPIKE_S} s spike at ${S.PEAK_RATE} req/s (${S.SPIKE_FACTOR}×), ${S.TAIL_S} s trough; ${arrivals.length} requests (Poisson, seed ${S.SEED}), ${RUNS} run(s)`);
  console.log(
    `instance: ${S.SIM.maxRunning} slots, ttft ${S.SIM.ttftMs} ms, ${S.SIM.tokensPerSecond} tokens/s; max_tokens ${S.MAX_TOKENS} → ${S.SERVICE_MS} ms a request, ${((S.SLOTS * 1000) / S.SERVICE_MS).toFixed(1)} req/s at full use; ` +
      `the trough fills ${(((S.TROUGH_RATE * svc) / S.SLOTS) * 100).toFixed(0)} % of one instance's slots`,
  );
  const derive = (name: string, rate: number, n: number) => `${name}: ceil(${rate.toFixed(2)} req/s × ${svc} s / (${S.SLOTS} slots × ${S.TARGET_UTILIZATION})) = ceil(${((rate * svc) / (S.SLOTS * S.TARGET_UTILIZATION)).toFixed(2)}) = ${n} instances`;
  console.log(`${derive('static peak', S.PEAK_RATE, S.N_PEAK)}\n${derive('static average', S.AVERAGE_RATE, S.N_AVERAGE)}`);
  console.log(
    autoscale
      ? `arus: 1 configured instance + the local scaler (min 1, max ${S.N_PEAK + 1}, target ${S.TARGET_UTILIZATION}, window ${S.SCALE_WINDOW_MS / 1000} s, panic ${S.PANIC_WINDOW_MS / 1000} s, scale-down cool-down ${S.SCALE_DOWN_COOLDOWN_MS / 1000} s, drain 30 s, warm-up ${S.WARMUP_MS / 1000} s)`
      : 'arus: STAND-IN: the source has no local scaler or no arus_balancer_pool_current_instances gauge yet: 1 instance, no autoscale; its scrape and instance-seconds await them',
  );
  console.log(
    `balancers: strategy gpu, maxConcurrentPerInstance ${S.SLOTS}, maxQueue 5000, queueTimeoutMs 60000, slowStartMs 3000; ` +
      `${S.SEQUENTIAL ? 'setups one after the other (BENCH_SCALE_SEQUENTIAL)' : 'setups side by side, the same arrivals at the same instants'}\n`,
  );
}

/** How busy the machine was during the arrivals, and how much of it was the bench's own processes. */
type CpuOut = { samples: CpuSample[]; benchCoreSeconds: number; seconds: number };
type RunOut = { results: SetupResult[]; leftovers: string[]; t0Epoch: number; cpu: CpuOut };

/** The setups of `group` started, the schedule sent to all of them at once, their /metrics scraped; all stopped after. */
async function runGroup(group: SetupSpec[], arrivals: number[], cleanup: (() => Promise<unknown>)[]): Promise<RunOut> {
  if (group.some((s) => s.key === 'arus')) rmSync(LOG_FILE, { force: true });
  const running: RunningSetup[] = [];
  for (const spec of group) running.push(await startSetup(spec, spec.key === 'arus' ? LOG_FILE : undefined, cleanup));
  const t0 = performance.now() + 200;
  const t0Epoch = Date.now() + 200;
  const scrapers = running.map((r) => startScraper(r.port, t0));
  const sampler = startCpuSampler(t0);
  const ours = () => running.reduce((sum, r) => sum + r.cpuSeconds(), 0) + (process.cpuUsage().user + process.cpuUsage().system) / 1e6;
  const before = ours();
  const runs = await run(running.map((r) => r.port), arrivals, t0);
  const cpu: CpuOut = { samples: sampler.stop(), benchCoreSeconds: ours() - before, seconds: (performance.now() - t0) / 1000 };
  const fleets = await Promise.all(scrapers.map((s) => s.stop()));
  const leftovers = (await Promise.all(running.map((r) => r.stop()))).flat();
  return { results: running.map((r, i) => ({ spec: r.spec, run: runs[i], fleet: fleets[i] })), leftovers, t0Epoch, cpu };
}

function printCpu(cpu: CpuOut[]): void {
  const all = cpu.flatMap((c) => c.samples);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const spike = all.filter((c) => c.t >= S.SPIKE_START_MS && c.t < S.SPIKE_END_MS);
  const seconds = cpu.reduce((a, c) => a + c.seconds, 0);
  const ours = cpu.reduce((a, c) => a + c.benchCoreSeconds, 0);
  console.log(
    `machine (${CORES} cores) while the load ran: ${(mean(all.map((c) => c.busy)) * 100).toFixed(0)} % busy, ${(mean(spike.map((c) => c.busy)) * 100).toFixed(0)} % in the spike; ` +
      `1-min load average up to ${Math.max(...all.map((c) => c.load)).toFixed(1)}; the bench's own processes ${(ours / seconds).toFixed(2)} cores on average (the rest: other work on the machine)`,
  );
}

/** The last run's, for the table, the CSV and the plot (cpu: when the setups ran side by side, on one clock). */
type Last = { results: SetupResult[]; lag?: number; t0Epoch: number; cpu?: CpuSample[] };

async function bench(): Promise<void> {
  const autoscale = scalerPresent();
  const arrivals = schedule(S.SEED);
  printPlan(autoscale, arrivals);
  if (autoscale) await ensureBuilt();
  mkdirSync(S.OUT_DIR, { recursive: true });
  const cleanup: (() => Promise<unknown>)[] = [];
  const stopAll = async () => {
    for (const stop of cleanup.reverse()) await stop().catch((err: unknown) => console.error(`stop failed: ${String(err)}`));
    cleanup.length = 0;
  };
  let interrupted = false;
  const onSignal = (sig: string) => {
    if (interrupted) return;
    interrupted = true;
    console.log(`\n${sig}: stopping every child …`);
    void stopAll().then(() => process.exit(130));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  const all = specs(autoscale);
  const summaries: Summary[][] = [];
  const targets: Targets[] = [];
  const leftovers: string[] = [];
  const cpus: CpuOut[] = [];
  let last: Last | undefined;
  try {
    for (let i = 0; i < RUNS; i++) {
      if (RUNS > 1) console.log(`run ${i + 1} of ${RUNS} …`);
      const outs: RunOut[] = [];
      if (S.SEQUENTIAL) for (const spec of all) outs.push(await runGroup([spec], arrivals, cleanup));
      else outs.push(await runGroup(all, arrivals, cleanup));
      const results = outs.flatMap((o) => o.results);
      leftovers.push(...outs.flatMap((o) => o.leftovers));
      cpus.push(...outs.map((o) => o.cpu));
      const arus = results.find((r) => r.spec.key === 'arus');
      const lag = arus?.spec.autoscale ? lagEnd(arus.fleet) : undefined;
      const s = results.map((r) => summarize(r, lag, S.SPIKE_END_MS));
      summaries.push(s);
      targets.push(targetsOf(s));
      last = { results, lag, t0Epoch: (outs.find((o) => o.results.some((r) => r.spec.key === 'arus')) ?? outs[0]).t0Epoch, cpu: outs.length === 1 ? outs[0].cpu.samples : undefined };
      if (RUNS > 1)
        console.log(`  lag ${lag === undefined ? 'did not end' : `${((lag - S.SPIKE_START_MS) / 1000).toFixed(1)} s`}; ${s.map((x) => `${x.key}: failed ${x.failed}, p99 ${x.whole.p99.toFixed(0)} ms, ${x.instanceSeconds.toFixed(0)} inst-s`).join('; ')}`);
    }
  } finally {
    await stopAll();
  }
  report(last!, summaries, targets, leftovers);
  printCpu(cpus);
  const end = await distState();
  if (autoscale) console.log(`dist/ at the end: ${end}${end === 'fresh' ? '' : ' (a source file changed during the run: the `arus sim`s started after it ran the sources through tsx, slower to start)'}`);
  await writeOutputs(last!);
}

function report(last: Last, summaries: Summary[][], targets: Targets[], leftovers: string[]): void {
  const specsRun = last.results.map((r) => r.spec);
  printTable(buckets(last.results, S.BUCKET_MS * S.TABLE_EVERY), specsRun, S.BUCKET_MS * S.TABLE_EVERY);
  const arus = last.results.find((r) => r.spec.key === 'arus');
  if (arus?.spec.autoscale) printEvents(readEvents(LOG_FILE, last.t0Epoch));
  const measured = arus?.spec.autoscale && arus.fleet.some((f) => f.current !== undefined);
  const lagText =
    last.lag === undefined ? 'it never ended (the outside-lag figures cover the first trough only)' : `${((last.lag - S.SPIKE_START_MS) / 1000).toFixed(1)} s (to ${(last.lag / 1000).toFixed(1)} s)`;
  console.log(
    `\nscale-up lag: from the spike's start (${S.SPIKE_START_MS / 1000} s) to the first scrape at which the Arus pool has grown, no instance is warming ` +
      `and the balancer's queue is empty: ${measured ? lagText : 'not measured (no scaler or no pool gauges)'}`,
  );
  printSummary(summaries, summaries.length);
  printTargets(targets);
  printAsserts(targets);
  console.log(`  leftover child processes: ${leftovers.length === 0 ? 'none' : `${leftovers.length} (killed): ${leftovers.join('; ')}`}`);
}

async function writeOutputs(last: Last): Promise<void> {
  const specsRun = last.results.map((r) => r.spec);
  const rows = buckets(last.results, S.BUCKET_MS);
  const csv = join(S.OUT_DIR, 'scale.csv');
  writeCsv(csv, rows, specsRun, last.cpu);
  const arus = last.results.find((r) => r.spec.key === 'arus');
  const fleetCsv = join(S.OUT_DIR, 'scale-fleet.csv');
  if (arus) writeFleetCsv(fleetCsv, arus.fleet);
  const title = `Arus scale bench: ${S.TROUGH_S} s at ${S.TROUGH_RATE} req/s, ${S.SPIKE_S} s at ${S.PEAK_RATE}, ${S.TAIL_S} s at ${S.TROUGH_RATE}`;
  let plot: string;
  try {
    plot = await writePlot(join(S.OUT_DIR, 'scale.svg'), join(S.OUT_DIR, 'scale.png'), svg({ buckets: rows, specs: specsRun, fleet: arus?.fleet ?? [], lag: last.lag, title }));
  } catch (err) {
    plot = `${join(S.OUT_DIR, 'scale.svg')} (the PNG failed: ${(err as Error).message.split('\n')[0]})`;
  }
  console.log(`\nwritten: ${csv} (5-s buckets)${arus ? `, ${fleetCsv} (every scrape)` : ''}, ${plot}${arus?.spec.autoscale ? `, ${LOG_FILE} (the Arus balancer's log)` : ''}`);
}

if (process.argv[2] === '--serve') await serve(process.argv[3], JSON.parse(process.argv[4] ?? 'null'));
else await bench();
