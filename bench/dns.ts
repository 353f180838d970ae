// DNS throughput benchmark: `arus dns --db` (the DNS role as an operator runs
// it, from a database written by `arus apply`) against a bare node:dgram socket
// that answers every query with one fixed reply (one core's ceiling), all
// driven by dnsperf with the same query mix, in one run:
//
//   bare       the bare socket, pinned to BENCH_SERVER_CPU
//   arus       arus dns --workers 1, RRL off (enabled: false), pinned
//   arus-rrl   arus dns --workers 1, RRL on with every limit set for the load, pinned
//   arus-w2    arus dns --workers 2, not pinned: its two workers share the
//              two cores with dnsperf (BENCH_W2_CPUS=0,1 pins it to both)
//
//   npm run bench:dns
//
// Environment: BENCH_SECONDS (20), BENCH_RUNS (3, medians reported),
// BENCH_OUTSTANDING (dnsperf -q, 100), BENCH_CLIENTS (dnsperf -c, 1),
// BENCH_SERVER_CPU (1), BENCH_CLIENT_CPU (0), BENCH_QUERIES (queries in the
// file, 20000), BENCH_ONLY (comma-separated rows: bare,arus,arus-rrl,arus-w2),
// BENCH_W2_CPUS (unset: arus-w2 not pinned), BENCH_WORKERS_FLAG=off (leave
// --workers out: the engine before it).
//
// Response rate limiting: dnsperf sends every query from 127.0.0.1, one /24,
// which is exempt by default. The RRL row turns the exemption off and sets
// every limit — answers, NXDOMAIN and errors — to 1,000,000 a second (the
// schema's maximum, several times the bare socket's whole rate): each kind of
// reply is under its limit, so the limiter's bookkeeping runs for every query
// and limits none. After every run the bench reads arus_dns_rrl_limited_total
// from the node's /metrics and fails unless it is 0 (and unless the node's
// arus_dns_queries_total counted every answer dnsperf got, so that the 0 is
// the workers' own).
//
// dnsperf adds at most one fixed EDNS option to every query (-E), so the ECS
// mix comes from a binary query file instead (-B: length-prefixed wire-format
// messages, sent as they are with the ID rewritten), written here with a
// different client subnet, name, type and letter case on each query.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort, median, runDnsperf, writeQueryFile, type DnsperfResult } from './common.js';
import { applyRegions, scrape, startArus, workersArgs, workersNote, writeRegions, type ArusProcess } from './dns-arus.js';

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const SECONDS = env('BENCH_SECONDS', 20);
const RUNS = env('BENCH_RUNS', 3);
const OUTSTANDING = env('BENCH_OUTSTANDING', 100);
const CLIENTS = env('BENCH_CLIENTS', 1);
const SERVER_CPU = env('BENCH_SERVER_CPU', 1);
const CLIENT_CPU = env('BENCH_CLIENT_CPU', 0);
const QUERIES = env('BENCH_QUERIES', 20_000);
const W2_CPUS = process.env.BENCH_W2_CPUS;
const ONLY = process.env.BENCH_ONLY?.split(',');

/** Every limit at the schema's maximum, none reached by one /24 (see above). */
const RRL_ON = { enabled: true, exempt: [], responsesPerSecond: 1_000_000, nxdomainsPerSecond: 1_000_000, errorsPerSecond: 1_000_000 };
const RRL_OFF = { enabled: false };

type Kind = 'bare' | 'arus' | 'arus-rrl' | 'arus-w2';
const LABELS: Record<Kind, string> = {
  bare: 'bare node:dgram (ceiling)',
  arus: 'arus dns, 1 worker, RRL off',
  'arus-rrl': 'arus dns, 1 worker, RRL on',
  'arus-w2': 'arus dns, 2 workers, RRL off',
};

type Server = { kind: Kind; port: number; metrics?: string; arus?: ArusProcess; bare?: ChildProcess; stop(): Promise<number | string> };

class BenchFailure extends Error {}

// ---------------------------------------------------------------- servers

function startBare(pin: boolean): Promise<Server> {
  const node = [process.execPath, '--import', 'tsx', fileURLToPath(new URL('dns-bare.ts', import.meta.url))];
  const [cmd, ...args] = pin ? ['taskset', '-c', String(SERVER_CPU), ...node] : node;
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | string>((r) => child.once('exit', (code, signal) => r(code ?? signal ?? 'unknown')));
  return new Promise((resolve, reject) => {
    void exited.then((code) => reject(new Error(`the bare socket exited (${code}) before listening`)));
    createInterface({ input: child.stdout }).once('line', (line) => {
      const { port } = JSON.parse(line) as { port: number };
      resolve({ kind: 'bare', port, bare: child, stop: () => (child.kill('SIGTERM'), exited) });
    });
  });
}

async function startNode(kind: Exclude<Kind, 'bare'>, dbs: { off: string; on: string }, pin: boolean): Promise<Server> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const db = kind === 'arus-rrl' ? dbs.on : dbs.off;
  const workers = kind === 'arus-w2' ? 2 : 1;
  const cpus = kind === 'arus-w2' ? W2_CPUS : pin ? String(SERVER_CPU) : undefined;
  const arus = await startArus(['dns', '--db', db, '--dns-listen', `127.0.0.1:${port}`, '--metrics-listen', `127.0.0.1:${metricsPort}`, ...workersArgs('dns', workers)], { cpus });
  return { kind, port, metrics: `http://127.0.0.1:${metricsPort}/metrics`, arus, stop: () => arus.stop() };
}

// ---------------------------------------------------------------- runs

const COUNTERS = ['arus_dns_queries_total', 'arus_dns_rrl_limited_total', 'arus_dns_errors_total'];

/**
 * After a run against an Arus node: its counters must have seen every answer
 * dnsperf got, and with RRL on none may have been limited.
 */
async function checkCounters(s: Server, before: Record<string, number>, r: DnsperfResult): Promise<Record<string, number>> {
  const now = await scrape(s.metrics!, COUNTERS);
  if (now.arus_dns_rrl_limited_total !== 0) throw new BenchFailure(`${s.kind}: arus_dns_rrl_limited_total is ${now.arus_dns_rrl_limited_total}, not 0: a limit was reached, the RRL settings are wrong for the load`);
  const queries = now.arus_dns_queries_total - before.arus_dns_queries_total;
  if (queries < r.completed)
    throw new BenchFailure(`${s.kind}: /metrics counted ${queries} queries in the run but dnsperf got ${r.completed} answers: the node's counters do not see every worker, so its RRL count proves nothing`);
  if (now.arus_dns_errors_total !== 0) throw new BenchFailure(`${s.kind}: arus_dns_errors_total is ${now.arus_dns_errors_total}: exceptions while answering`);
  return now;
}

type Row = { qps: number; lost: number; p50: number; p99: number; avg: number };
const row = (rs: DnsperfResult[]): Row => ({
  qps: median(rs.map((r) => r.qps)),
  lost: rs.reduce((n, r) => n + r.lost, 0),
  p50: median(rs.map((r) => r.p50ms)),
  p99: median(rs.map((r) => r.p99ms)),
  avg: median(rs.map((r) => r.avgms)),
});

function printResults(results: Map<Kind, DnsperfResult[]>): void {
  const rows = new Map([...results].map(([k, rs]) => [k, row(rs)]));
  const bare = rows.get('bare');
  console.log(`\n| server | answered q/s | × bare | lost (all runs) | p50 ms | p99 ms | avg ms |`);
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const [kind, r] of rows)
    console.log(`| ${LABELS[kind]} | ${Math.round(r.qps).toLocaleString('en-US')} | ${bare ? (r.qps / bare.qps).toFixed(2) : '–'} | ${r.lost} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.avg.toFixed(2)} |`);
  console.log(`\nmedians of ${RUNS} × ${SECONDS} s; lost summed over the runs`);
  const targets: [string, boolean | undefined, string][] = [];
  const arus = rows.get('arus');
  const rrl = rows.get('arus-rrl');
  if (arus && bare) targets.push(['Arus 1 worker ≥ 0.9× the bare socket', arus.qps >= 0.9 * bare.qps, `${(arus.qps / bare.qps).toFixed(2)}×`]);
  const arusRows = [...rows].filter(([k]) => k !== 'bare');
  if (arusRows.length) targets.push(['0 lost (every Arus row)', arusRows.every(([, r]) => r.lost === 0), arusRows.map(([k, r]) => `${k} ${r.lost}`).join(', ')]);
  if (arus && rrl) targets.push(['RRL on within 5 % of RRL off', rrl.qps >= 0.95 * arus.qps, `${((rrl.qps / arus.qps - 1) * 100).toFixed(1)} %`]);
  for (const [what, met, value] of targets) console.log(`target: ${what}: ${value} — ${met ? 'met' : 'MISSED'}`);
}

async function bench(): Promise<void> {
  if (spawnSync('dnsperf', ['-h']).error) {
    console.error('dnsperf not found on PATH (Debian: apt-get install dnsperf)');
    process.exit(1);
  }
  const pin = !spawnSync('taskset', ['-c', '0', 'true']).error;
  const dir = mkdtempSync(join(tmpdir(), 'arus-bench-dns-'));
  const file = join(dir, 'queries.bin');
  const mix = writeQueryFile(file, QUERIES);
  const dbs = { off: join(dir, 'rrl-off.db'), on: join(dir, 'rrl-on.db') };
  applyRegions(dbs.off, writeRegions(join(dir, 'off'), { rrl: RRL_OFF }));
  applyRegions(dbs.on, writeRegions(join(dir, 'on'), { rrl: RRL_ON }));
  const kinds = (['bare', 'arus', 'arus-rrl', 'arus-w2'] as const).filter((k) => !ONLY || ONLY.includes(k));

  console.log(`Arus DNS benchmark: ${RUNS} run(s) of ${SECONDS} s per server, alternating; dnsperf -q ${OUTSTANDING} -c ${CLIENTS}`);
  console.log(pin ? `pinned: 1-worker servers and the bare socket on CPU ${SERVER_CPU}, dnsperf on CPU ${CLIENT_CPU}; arus-w2 ${W2_CPUS ? `on CPUs ${W2_CPUS}` : 'not pinned (shares the cores with dnsperf)'}` : 'taskset not found: nothing pinned');
  console.log(`RRL on: ${JSON.stringify(RRL_ON)}; RRL off: ${JSON.stringify(RRL_OFF)} (zone.yaml's rrl, applied with arus apply --db)`);
  const note = workersNote('dns');
  if (note) console.log(note);
  console.log(`mix: ${mix}\n`);

  const servers = new Map<Kind, Server>();
  const results = new Map<Kind, DnsperfResult[]>();
  const dnsperf = (port: number, seconds: number) => runDnsperf({ port, file, seconds, outstanding: OUTSTANDING, clients: CLIENTS, cpu: pin ? CLIENT_CPU : undefined });
  let failed = false;
  try {
    // All stay up and the runs alternate, so that the noise of a shared machine falls on each alike.
    for (const kind of kinds) {
      const s = kind === 'bare' ? await startBare(pin) : await startNode(kind, dbs, pin);
      servers.set(kind, s);
      await dnsperf(s.port, 2); // warm-up: JIT and caches
      results.set(kind, []);
    }
    for (let run = 1; run <= RUNS; run++)
      for (const [kind, s] of servers) {
        const before = s.metrics ? await scrape(s.metrics, COUNTERS) : undefined;
        const r = await dnsperf(s.port, SECONDS);
        results.get(kind)!.push(r);
        const counted = before ? await checkCounters(s, before, r) : undefined;
        console.log(
          `run ${run} ${kind.padEnd(8)}: ${Math.round(r.qps)} q/s, lost ${r.lost}, p50 ${r.p50ms.toFixed(2)} ms, p99 ${r.p99ms.toFixed(2)} ms; ${r.rcodes}` +
            (counted ? `; node: ${counted.arus_dns_queries_total} queries, ${counted.arus_dns_rrl_limited_total} rate-limited` : ''),
        );
      }
  } catch (err) {
    failed = true;
    console.error(`\nFAILED: ${(err as Error).message}`);
  } finally {
    for (const [kind, s] of servers) {
      const errors = s.arus?.errors.length ?? 0;
      const code = await s.stop();
      if (s.arus) console.log(`${kind}: exit ${code}${errors ? `, ${errors} error log lines: ${JSON.stringify(s.arus.errors.slice(0, 3))}` : ''}`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  printResults(results);
  if (failed) process.exit(1);
}

await bench();
