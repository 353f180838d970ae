// Latency isolation: can control-plane work delay a DNS answer? dnsperf asks
// `arus up` at a fixed rate (-Q, 20,000 q/s) with bench:dns's query mix, for
// BENCH_SECONDS, twice against the same process:
//
//   (a) DNS alone;
//   (b) while 8 admin clients PATCH a region as fast as the API accepts them
//       (each a new configuration version and snapshot) and 25 probe agents,
//       each with its own bound token, report 1,000 results 10 times a second
//       (control's per-agent limit: their full rate).
//
// Done for `arus up` with its DNS worker threads (the default: one per core)
// and again with --workers 0 (the responder on the shared event loop, as
// before issue 17): the "before" rows, in the same run. Target: DNS p99 ≤ 2 ms
// under (b) with workers.
//
//   npm run bench:isolation
//
// Environment: BENCH_SECONDS (20), BENCH_RATE (dnsperf -Q, 20000),
// BENCH_WRITERS (8), BENCH_AGENTS (25), BENCH_RESULTS (results per report,
// 1000), BENCH_REPORT_RATE (reports a second per agent, 10; 0: back to back),
// BENCH_WORKERS (the workers row's --workers; unset: arus up's default),
// BENCH_ONLY (workers | shared), BENCH_LOAD_NICE (10). Nothing is pinned:
// `arus up`, dnsperf and the load share the machine's cores. The load runs in
// a process of its own under `nice -n BENCH_LOAD_NICE`: its clients are not
// the system under test (elsewhere they are other machines), and at the same
// priority they would take the cores the DNS workers need for reasons that
// have nothing to do with Arus. dnsperf and `arus up` run at the usual priority.
//
// `arus up` runs on free loopback ports with a temporary database and regions/
// whose checks point at simulated model servers it starts itself (--sim auto),
// without the demo balancers (they take fixed ports).

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { regionsWithChecks } from '../test/helpers/regions.js';
import { freePort, rssMiB, runDnsperf, sleep, writeQueryFile, type DnsperfResult } from './common.js';
import { startArus, takesWorkers, workersNote } from './dns-arus.js';
import { createAgents, spawnLoad } from './isolation-load.js';

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const SECONDS = env('BENCH_SECONDS', 20);
const RATE = env('BENCH_RATE', 20_000);
const WRITERS = env('BENCH_WRITERS', 8);
const AGENTS = env('BENCH_AGENTS', 25);
const RESULTS = env('BENCH_RESULTS', 1000);
const REPORT_RATE = env('BENCH_REPORT_RATE', 10);
const WORKERS = process.env.BENCH_WORKERS;
const ONLY = process.env.BENCH_ONLY;
const NICE = env('BENCH_LOAD_NICE', 10);
const ADMIN = 'bench-isolation-admin-token';
const TARGET_P99_MS = 2;

type Mode = 'workers' | 'shared';
type Phase = { dns: DnsperfResult; writesPerS?: number; reportsPerS?: number; rss: number };
type Result = { alone: Phase; loaded: Phase; floor?: DnsperfResult; exit: number | string; errors: number };

/** `arus up` on free ports in `dir`, its checks on simulated servers; returns it with its API's base URL. */
async function startUp(dir: string, mode: Mode) {
  const ports = new Map<string, number>();
  for (const r of ['sg', 'jkt', 'bkk', 'mnl']) for (const z of ['a', 'b']) ports.set(`${r}-${z}`, await freePort());
  const regions = regionsWithChecks(dir, (zone) => ports.get(zone));
  const db = join(dir, 'arus.db');
  const agents = createAgents(db, AGENTS);
  const [dnsPort, apiPort] = [await freePort(), await freePort()];
  const workers = mode === 'shared' ? ['--workers', '0'] : WORKERS !== undefined ? ['--workers', WORKERS] : [];
  const args = ['up', '--db', db, '--regions', regions, '--dns-listen', `127.0.0.1:${dnsPort}`, '--api-listen', `127.0.0.1:${apiPort}`, ...(takesWorkers('up') ? workers : [])];
  const arus = await startArus(args, { env: { ARUS_ADMIN_TOKEN: ADMIN }, timeoutMs: 120_000 });
  return { arus, dnsPort, base: `http://127.0.0.1:${apiPort}`, agents, args };
}

const perS = (counts: Record<number, number>, status: number, seconds: number) => (counts[status] ?? 0) / seconds;
const fmt = (m: Record<number, number>) => Object.entries(m).map(([s, n]) => `${s}×${n}`).join(' ');

/** Every thread of `pid`: its name and CPU time (clock ticks), from /proc. */
function threads(pid: number): Map<number, { comm: string; ticks: number }> {
  const out = new Map<number, { comm: string; ticks: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), { comm, ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** CPU per thread name between two readings, as % of one core, the busiest first. */
function cpuShares(pid: number, a: Map<number, { comm: string; ticks: number }>, b: Map<number, { comm: string; ticks: number }>, seconds: number): string {
  const rows = [...b].map(([tid, t]) => ({ name: tid === pid ? 'main thread' : t.comm === 'node' ? 'other threads (DNS workers, libuv, V8)' : t.comm, pct: ((t.ticks - (a.get(tid)?.ticks ?? 0)) / 100 / seconds) * 100 }));
  const by = new Map<string, number>();
  for (const r of rows) by.set(r.name, (by.get(r.name) ?? 0) + r.pct);
  return [...by].sort((x, y) => y[1] - x[1]).filter(([, p]) => p >= 1).map(([n, p]) => `${n} ${p.toFixed(0)}%`).join(', ');
}

/** The machine's busy and total CPU time (clock ticks, all cores), from /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - (f[4] ?? 0), total };
}

/** A process's user + system CPU time (clock ticks). */
function processTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** The version of the snapshot control serves now. */
async function snapshotVersion(base: string): Promise<number> {
  const res = await fetch(`${base}/v1/snapshots/current`, { headers: { authorization: `Bearer ${ADMIN}` } });
  return ((await res.json()) as { version: number }).version;
}

async function measure(mode: Mode, dir: string, file: string): Promise<Result> {
  const { arus, dnsPort, base, agents, args } = await startUp(join(dir, mode), mode);
  console.log(`\n${mode}: arus ${args.join(' ')}`);
  const dnsperf = (seconds: number) => runDnsperf({ port: dnsPort, file, seconds, outstanding: Math.min(65_000, RATE * 2), rate: RATE });
  let result: Omit<Result, 'exit'>;
  let code: number | string;
  try {
    await sleep(3000); // the first probe rounds: health settles
    await dnsperf(2); // warm-up
    const v0 = await snapshotVersion(base);
    const aloneDns = await dnsperf(SECONDS);
    const alone = { dns: aloneDns, rss: rssMiB(arus.pid) };
    const v1 = await snapshotVersion(base);
    console.log(`  (a) DNS alone:   ${line(alone)}; ${v1 - v0} new snapshots`);
    const load = await spawnLoad({ base, admin: ADMIN, writers: WRITERS, agents, results: RESULTS, reportRate: REPORT_RATE }, NICE);
    await sleep(1000); // the load ramps up
    const before = await load.counts();
    const [cpu0, machine0, load0, v2] = [threads(arus.pid), machineTicks(), processTicks(load.pid), await snapshotVersion(base)];
    const t0 = performance.now();
    const loadedDns = await dnsperf(SECONDS);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuShares(arus.pid, cpu0, threads(arus.pid), seconds);
    const machine = machineTicks();
    const busy = ((machine.busy - machine0.busy) / (machine.total - machine0.total)) * 100;
    const loadCpu = (processTicks(load.pid) - load0) / seconds;
    const v3 = await snapshotVersion(base);
    const during = await load.counts();
    // (c) The floor under this load: the same dnsperf against a bare socket in a process of its own
    // (one fixed reply, no steering), the load still on arus up. What is left above it is Arus's.
    let floor: DnsperfResult | undefined;
    if (mode === 'workers') {
      const bare = await startBare();
      try {
        floor = await runDnsperf({ port: bare.port, file, seconds: SECONDS, outstanding: Math.min(65_000, RATE * 2), rate: RATE });
      } finally {
        await bare.stop();
      }
      console.log(`  (c) bare socket beside the same load: ${Math.round(floor.qps)} q/s, lost ${floor.lost}, p50 ${floor.p50ms.toFixed(2)} ms, p99 ${floor.p99ms.toFixed(2)} ms, max ${floor.maxms.toFixed(1)} ms`);
    }
    const after = { ...(await load.stop()), writes: during.writes, reports: during.reports };
    const rss = rssMiB(arus.pid);
    const delta = (x: Record<number, number>, y: Record<number, number>) => Object.fromEntries(Object.keys(x).map((k) => [Number(k), x[Number(k)] - (y[Number(k)] ?? 0)]));
    const writes = delta(after.writes, before.writes);
    const reports = delta(after.reports, before.reports);
    const loaded = { dns: loadedDns, writesPerS: perS(writes, 200, seconds), reportsPerS: perS(reports, 200, seconds), rss };
    console.log(`  (b) beside load: ${line(loaded)}; ${v3 - v2} new snapshots (${((v3 - v2) / seconds).toFixed(0)}/s)`);
    console.log(`      HTTP statuses: writes ${fmt(writes)}; reports ${fmt(reports)}; request errors ${after.errors - before.errors}`);
    console.log(`      CPU during (b), % of one core: arus up's threads ${cpu}; the load's process ${loadCpu.toFixed(0)}%; the machine ${busy.toFixed(0)} % busy (all ${cpus().length} cores)`);
    result = { alone, loaded, floor, errors: arus.errors.length };
  } finally {
    code = await arus.stop();
    console.log(`  arus up exit ${code}${arus.errors.length ? `; ${arus.errors.length} error log lines, first: ${JSON.stringify(arus.errors[0])}` : ''}`);
  }
  return { ...result, exit: code };
}

function line(p: Phase): string {
  const d = p.dns;
  const load = p.writesPerS !== undefined ? `; ${p.writesPerS.toFixed(0)} writes/s, ${p.reportsPerS!.toFixed(0)} reports/s taken` : '';
  return `${Math.round(d.qps)} q/s, lost ${d.lost}, p50 ${d.p50ms.toFixed(2)} ms, p99 ${d.p99ms.toFixed(2)} ms, max ${d.maxms.toFixed(1)} ms${load}; RSS ${p.rss.toFixed(0)} MiB`;
}

/** bench:dns's bare socket (bench/dns-bare.ts), a process of its own. */
function startBare(): Promise<{ port: number; stop(): Promise<unknown> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('dns-bare.ts', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.once('exit', r));
  return new Promise((resolve, reject) => {
    void exited.then((code) => reject(new Error(`the bare socket exited (${String(code)}) before listening`)));
    createInterface({ input: child.stdout }).once('line', (line) => {
      const { port } = JSON.parse(line) as { port: number };
      resolve({ port, stop: () => (child.kill('SIGTERM'), exited) });
    });
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'arus-bench-isolation-'));
  const file = join(dir, 'queries.bin');
  const mix = writeQueryFile(file);
  console.log(`DNS latency isolation: dnsperf -Q ${RATE} for ${SECONDS} s against arus up, alone and beside ${WRITERS} PATCH clients + ${AGENTS} probe agents (${RESULTS} results × ${REPORT_RATE || 'unpaced'}/s each)`);
  console.log(`${cpus().length} cores, nothing pinned; workers row: ${WORKERS !== undefined ? `--workers ${WORKERS}` : "arus up's default (one per core)"}; shared row: --workers 0`);
  const note = workersNote('up');
  if (note) console.log(note);
  console.log(`mix: ${mix}`);
  const modes = (['workers', 'shared'] as const).filter((m) => !ONLY || ONLY === m);
  const out = new Map<Mode, Result>();
  try {
    for (const m of modes) out.set(m, await measure(m, dir, file));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const label: Record<Mode, string> = { workers: 'arus up, DNS workers', shared: 'arus up --workers 0 (before)' };
  console.log('\n| arus up | load | answered q/s | lost | p50 ms | p99 ms | max ms | writes/s | reports/s |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const [m, r] of out)
    for (const [what, p] of [
      ['DNS alone', r.alone],
      ['writes + reports', r.loaded],
    ] as const)
      console.log(
        `| ${label[m]} | ${what} | ${Math.round(p.dns.qps).toLocaleString('en-US')} | ${p.dns.lost} | ${p.dns.p50ms.toFixed(2)} | ${p.dns.p99ms.toFixed(2)} | ${p.dns.maxms.toFixed(1)} | ${p.writesPerS?.toFixed(0) ?? '–'} | ${p.reportsPerS?.toFixed(0) ?? '–'} |`,
      );
  const w = out.get('workers');
  if (w?.floor) {
    const f = w.floor;
    console.log(`| bare node:dgram socket (the floor) | writes + reports on arus up | ${Math.round(f.qps).toLocaleString('en-US')} | ${f.lost} | ${f.p50ms.toFixed(2)} | ${f.p99ms.toFixed(2)} | ${f.maxms.toFixed(1)} | – | – |`);
  }
  if (w) console.log(`\ntarget: DNS p99 ≤ ${TARGET_P99_MS} ms beside the load, with workers: ${w.loaded.dns.p99ms.toFixed(2)} ms — ${w.loaded.dns.p99ms <= TARGET_P99_MS ? 'met' : 'MISSED'}`);
  const s = out.get('shared');
  if (w && s) console.log(`p99 beside the load, --workers 0 / workers: ${(s.loaded.dns.p99ms / w.loaded.dns.p99ms).toFixed(1)}×`);
  if (w?.floor) console.log(`p99 beside the load, workers / the bare socket's: ${(w.loaded.dns.p99ms / w.floor.p99ms).toFixed(2)}×`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
