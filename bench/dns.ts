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
//   arus-signed  a signed zone (DNSSEC), the same mix with DO set on every
//              query: every reply carries RRSIGs; --workers 1, RRL off, pinned
//   arus-nx-do a signed zone, unique random names that do not exist, each
//              asked once with DO: compact denial, an NSEC signed per name
//              (one ECDSA P-256 signature per reply); --workers 1, RRL off, pinned
//   arus-nx    random names that do not exist, without DO, on a signed zone
//              (NXDOMAIN, nothing signed): the reference the signing cost per
//              reply is read from; --workers 1, RRL off, pinned
//
//   npm run bench:dns
//
// Environment: BENCH_SECONDS (20), BENCH_RUNS (3, medians reported),
// BENCH_OUTSTANDING (dnsperf -q, 100), BENCH_CLIENTS (dnsperf -c, 1),
// BENCH_SERVER_CPU (1), BENCH_CLIENT_CPU (0), BENCH_QUERIES (queries in the
// file, 20000), BENCH_ONLY (comma-separated rows: bare,arus,arus-rrl,arus-w2,
// arus-signed,arus-nx-do,arus-nx), BENCH_W2_CPUS (unset: arus-w2 not pinned),
// BENCH_WORKERS_FLAG=off (leave --workers out: the engine before it),
// BENCH_NX_QUERIES (names in each NX run's file, default 50,000 per second of
// BENCH_SECONDS: an arus-nx-do run fails if dnsperf got through them all, as
// a name would then have been asked twice; arus-nx, unsigned and ten times
// faster, may go round its file).
//
// The signed rows (bench/dns-signed.ts says why they run this way): `arus dns
// --db` does not sign (its snapshots carry no `dnssec`), so a signed database
// is served by `arus control` (pinned to BENCH_CLIENT_CPU beside dnsperf: it
// idles once it has published) and each signed row is `arus dns --control URL
// --token T`, the token of a dns node named in zone.dnssec.signers, pinned to
// BENCH_SERVER_CPU like the other rows. The unsigned rows use databases with no
// keys. Before the runs every query of the DO file is sent to arus-signed (and
// 1,000 other nonexistent names to arus-nx-do) and every reply must be NOERROR,
// untruncated, with every RRset of its answer and authority sections covered
// by an RRSIG (and an NSEC for the names that do not exist); the steered
// addresses must be the unsigned arus row's, query for query. After each run
// dnsperf's response codes must be all NOERROR (DO turns NXDOMAIN into compact
// denial), the node may have truncated nothing and taken no new snapshot; after
// the last run a sample is checked again. The signing cost per reply: nothing
// in the node's /metrics measures it, so it is a micro-measurement of
// crypto.sign (ECDSA P-256, ieee-p1363, 150 octets) in this process, printed
// beside the end-to-end difference 1/q(arus-nx-do) − 1/q(arus-nx).
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
import { addresses, ask, parseReply, prepareSignedZone, rcodeCounts, readQueryFile, signCostUs, startSignedControl, unsignedBecause, withDo, writeDoQueryFile, writeNxQueryFile, type SignedZone } from './dns-signed.js';

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
const NX_QUERIES = env('BENCH_NX_QUERIES', Math.max(100_000, SECONDS * 50_000));

/** Every limit at the schema's maximum, none reached by one /24 (see above). */
const RRL_ON = { enabled: true, exempt: [], responsesPerSecond: 1_000_000, nxdomainsPerSecond: 1_000_000, errorsPerSecond: 1_000_000 };
const RRL_OFF = { enabled: false };

const KINDS = ['bare', 'arus', 'arus-rrl', 'arus-w2', 'arus-signed', 'arus-nx-do', 'arus-nx'] as const;
type Kind = (typeof KINDS)[number];
const LABELS: Record<Kind, string> = {
  bare: 'bare node:dgram (ceiling)',
  arus: 'arus dns, 1 worker, RRL off',
  'arus-rrl': 'arus dns, 1 worker, RRL on',
  'arus-w2': 'arus dns, 2 workers, RRL off',
  'arus-signed': 'arus dns, 1 worker, RRL off, signed zone, DO on every query',
  'arus-nx-do': 'arus dns, 1 worker, RRL off, signed zone, unique NX names with DO',
  'arus-nx': 'arus dns, 1 worker, RRL off, signed zone, random NX names without DO',
};
type SignedKind = 'arus-signed' | 'arus-nx-do' | 'arus-nx';
const SIGNED_KINDS: readonly Kind[] = ['arus-signed', 'arus-nx-do', 'arus-nx'];
const isSigned = (k: Kind): k is SignedKind => SIGNED_KINDS.includes(k);
/** The dns node (in zone.dnssec.signers, its token bound to it) each signed row runs as. */
const NODE_OF: Record<SignedKind, string> = { 'arus-signed': 'bench-signed', 'arus-nx-do': 'bench-nx-do', 'arus-nx': 'bench-nx' };

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

/** A signed row: `arus dns --control` as a node named in zone.dnssec.signers, pinned like the 1-worker rows. */
async function startSignedNode(kind: SignedKind, control: string, zone: SignedZone, dir: string, pin: boolean): Promise<Server> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const node = NODE_OF[kind];
  const args = ['dns', '--control', control, '--token', zone.tokens[node], '--snapshot', join(dir, `${node}.snapshot.json`), '--dns-listen', `127.0.0.1:${port}`, '--metrics-listen', `127.0.0.1:${metricsPort}`];
  const arus = await startArus([...args, ...workersArgs('dns', 1)], { cpus: pin ? String(SERVER_CPU) : undefined });
  return { kind, port, metrics: `http://127.0.0.1:${metricsPort}/metrics`, arus, stop: () => arus.stop() };
}

// ---------------------------------------------------------------- runs

const COUNTERS = ['arus_dns_queries_total', 'arus_dns_rrl_limited_total', 'arus_dns_errors_total'];
const SIGNED_COUNTERS = [...COUNTERS, 'arus_dns_truncated_total', 'arus_snapshot_applied_total'];
const countersOf = (s: Server) => (isSigned(s.kind) ? SIGNED_COUNTERS : COUNTERS);

/**
 * After a run against an Arus node: its counters must have seen every answer
 * dnsperf got, and with RRL on none may have been limited.
 */
async function checkCounters(s: Server, before: Record<string, number>, r: DnsperfResult): Promise<Record<string, number>> {
  const now = await scrape(s.metrics!, countersOf(s));
  if (now.arus_dns_rrl_limited_total !== 0) throw new BenchFailure(`${s.kind}: arus_dns_rrl_limited_total is ${now.arus_dns_rrl_limited_total}, not 0: a limit was reached, the RRL settings are wrong for the load`);
  const queries = now.arus_dns_queries_total - before.arus_dns_queries_total;
  if (queries < r.completed)
    throw new BenchFailure(`${s.kind}: /metrics counted ${queries} queries in the run but dnsperf got ${r.completed} answers: the node's counters do not see every worker, so its RRL count proves nothing`);
  if (now.arus_dns_errors_total !== 0) throw new BenchFailure(`${s.kind}: arus_dns_errors_total is ${now.arus_dns_errors_total}: exceptions while answering`);
  if (isSigned(s.kind)) checkSignedRun(s.kind, before, now, r);
  return now;
}

/**
 * After a run of a signed row: dnsperf's response codes are the ones signed
 * replies have (all NOERROR with DO: compact denial; all NXDOMAIN without),
 * nothing was truncated (a TC reply has no RRSIG), the node took no new
 * snapshot (what was checked before the runs is what it served), and an NX
 * run with DO asked no name twice.
 */
function checkSignedRun(kind: SignedKind, before: Record<string, number>, now: Record<string, number>, r: DnsperfResult): void {
  const codes = rcodeCounts(r.rcodes);
  const expected = kind === 'arus-nx' ? 'NXDOMAIN' : 'NOERROR';
  const other = Object.keys(codes).filter((c) => c !== expected && codes[c] > 0);
  if (other.length || (codes[expected] ?? 0) !== r.completed) throw new BenchFailure(`${kind}: dnsperf's response codes are ${r.rcodes}, not all ${expected}`);
  const truncated = now.arus_dns_truncated_total - before.arus_dns_truncated_total;
  if (truncated !== 0) throw new BenchFailure(`${kind}: ${truncated} replies truncated in the run (a truncated reply carries no RRSIG)`);
  if (now.arus_snapshot_applied_total !== before.arus_snapshot_applied_total) throw new BenchFailure(`${kind}: the node took a new snapshot during the run: the replies checked before it are not what it served`);
  // Without DO nothing is signed or kept per name, and the row runs an order of magnitude faster: its file may go round.
  if (kind === 'arus-nx-do' && r.completed + r.lost > NX_QUERIES) throw new BenchFailure(`${kind}: dnsperf sent ${r.completed + r.lost} queries, more than the ${NX_QUERIES} names in the file: names were asked twice (raise BENCH_NX_QUERIES)`);
}

/** Every query sent to a signed row, and why its replies are not signed ones (the first few). */
async function checkSignedReplies(s: Server, queries: Buffer[], what: string): Promise<string> {
  const replies = await ask(s.port, queries);
  const nx = s.kind !== 'arus-signed';
  const bad = replies.map((r, i) => [i, s.kind === 'arus-nx' ? notNxdomain(r) : unsignedBecause(r, nx)] as const).filter(([, why]) => why !== undefined);
  if (bad.length) throw new BenchFailure(`${s.kind}: ${bad.length} of ${queries.length} replies (${what}) are not as a signed zone answers them, e.g. ${bad.slice(0, 3).map(([i, why]) => `query ${i}: ${why}`).join('; ')}`);
  return `${s.kind}: ${queries.length} of ${queries.length} replies (${what}) ${s.kind === 'arus-nx' ? 'NXDOMAIN, no RRSIG' : `NOERROR, every RRset with its RRSIG${nx ? ', an NSEC (NXNAME)' : ''}`}`;
}

/** Why a reply without DO to a name that does not exist is not a plain NXDOMAIN. */
function notNxdomain(reply: Buffer | undefined): string | undefined {
  if (!reply) return 'no reply';
  const r = parseReply(reply);
  if (r.rcode !== 3) return `rcode ${r.rcode}`;
  return [...r.an, ...r.ns].some((x) => x.type === 46) ? 'an RRSIG without DO' : undefined;
}

/** The signed row's steered addresses against the unsigned arus row's, query for query: the same steering, only signed. */
async function checkSameSteering(signed: Server, unsigned: Server, plain: Buffer[]): Promise<string> {
  const [a, b] = [await ask(unsigned.port, plain), await ask(signed.port, plain.map(withDo))];
  const differ = plain.map((_, i) => i).filter((i) => addresses(a[i]) !== addresses(b[i]));
  if (differ.length) throw new BenchFailure(`arus-signed steers differently from arus on ${differ.length} of ${plain.length} queries, e.g. query ${differ[0]}: ${addresses(a[differ[0]])} vs ${addresses(b[differ[0]])}`);
  return `arus-signed: the A/AAAA addresses of all ${plain.length} queries are the arus row's`;
}

type Row = { qps: number; lost: number; p50: number; p99: number; avg: number };
const row = (rs: DnsperfResult[]): Row => ({
  qps: median(rs.map((r) => r.qps)),
  lost: rs.reduce((n, r) => n + r.lost, 0),
  p50: median(rs.map((r) => r.p50ms)),
  p99: median(rs.map((r) => r.p99ms)),
  avg: median(rs.map((r) => r.avgms)),
});

function printResults(results: Map<Kind, DnsperfResult[]>, signUs: number | undefined): void {
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
  const signed = rows.get('arus-signed');
  const nxDo = rows.get('arus-nx-do');
  const nx = rows.get('arus-nx');
  if (arus && bare) targets.push(['Arus 1 worker ≥ 0.9× the bare socket', arus.qps >= 0.9 * bare.qps, `${(arus.qps / bare.qps).toFixed(2)}×`]);
  const arusRows = [...rows].filter(([k]) => k !== 'bare');
  if (arusRows.length) targets.push(['0 lost (every Arus row)', arusRows.every(([, r]) => r.lost === 0), arusRows.map(([k, r]) => `${k} ${r.lost}`).join(', ')]);
  if (arus && rrl) targets.push(['RRL on within 5 % of RRL off', rrl.qps >= 0.95 * arus.qps, `${((rrl.qps / arus.qps - 1) * 100).toFixed(1)} %`]);
  if (arus && signed) {
    const perRun = results.get('arus-signed')!.map((r, i) => (r.qps / results.get('arus')![i].qps).toFixed(2)).join(', ');
    targets.push(['signed (DO, full steering) ≥ 0.9× unsigned (arus)', signed.qps >= 0.9 * arus.qps, `${(signed.qps / arus.qps).toFixed(2)}× (${Math.round(signed.qps).toLocaleString('en-US')} vs ${Math.round(arus.qps).toLocaleString('en-US')} q/s; run by run ${perRun})`]);
  }
  if (nxDo) targets.push(['unique random NX names with DO ≥ 15,000 q/s on one core', nxDo.qps >= 15_000, `${Math.round(nxDo.qps).toLocaleString('en-US')} q/s`]);
  for (const [what, met, value] of targets) console.log(`target: ${what}: ${value} — ${met ? 'met' : 'MISSED'}`);
  if (signUs !== undefined)
    console.log(
      `signing cost per reply (micro-measurement in the bench process, not the node: crypto.sign, ECDSA P-256/SHA-256, ieee-p1363, 150 octets; median of 9 × 1,000): ${signUs.toFixed(1)} µs, ` +
        `one core's ceiling for signing alone ${Math.round(1e6 / signUs).toLocaleString('en-US')} signatures/s`,
    );
  if (nxDo && nx)
    console.log(
      `signing cost per reply (end to end, on the node: 1/q(arus-nx-do) − 1/q(arus-nx), the medians; everything DO adds to an NX reply — the NSEC, its RRSIG, the signed body): ` +
        `${(1e6 / nxDo.qps - 1e6 / nx.qps).toFixed(1)} µs (${(1e6 / nxDo.qps).toFixed(1)} − ${(1e6 / nx.qps).toFixed(1)} µs per reply)`,
    );
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
  const doFile = join(dir, 'queries-do.bin');
  const dbs = { off: join(dir, 'rrl-off.db'), on: join(dir, 'rrl-on.db') };
  applyRegions(dbs.off, writeRegions(join(dir, 'off'), { rrl: RRL_OFF }));
  applyRegions(dbs.on, writeRegions(join(dir, 'on'), { rrl: RRL_ON }));
  const kinds = KINDS.filter((k) => !ONLY || ONLY.includes(k));
  const signedKinds = kinds.filter(isSigned);
  if (kinds.includes('arus-signed')) writeDoQueryFile(file, doFile);
  // Measured before any server starts: the machine as quiet as it gets.
  const signUs = signedKinds.length ? signCostUs() : undefined;
  const zone = signedKinds.length ? prepareSignedZone(dir, { rrl: RRL_OFF }, signedKinds.map((k) => NODE_OF[k])) : undefined;

  console.log(`Arus DNS benchmark: ${RUNS} run(s) of ${SECONDS} s per server, alternating; dnsperf -q ${OUTSTANDING} -c ${CLIENTS}`);
  console.log(pin ? `pinned: 1-worker servers and the bare socket on CPU ${SERVER_CPU}, dnsperf on CPU ${CLIENT_CPU}; arus-w2 ${W2_CPUS ? `on CPUs ${W2_CPUS}` : 'not pinned (shares the cores with dnsperf)'}` : 'taskset not found: nothing pinned');
  console.log(`RRL on: ${JSON.stringify(RRL_ON)}; RRL off: ${JSON.stringify(RRL_OFF)} (zone.yaml's rrl, applied with arus apply --db)`);
  const note = workersNote('dns');
  if (note) console.log(note);
  console.log(`mix: ${mix}`);
  if (zone) {
    console.log(
      `signed rows: arus dnssec init (KSK and ZSK, ECDSA P-256, algorithm 13) on a database of their own, RRL off, zone.dnssec.signers ${JSON.stringify(signedKinds.map((k) => NODE_OF[k]))}; ` +
        `arus control on it${pin ? ` pinned to CPU ${CLIENT_CPU} (idle once it has published)` : ''}; each row arus dns --control --token (its node's dns token), --workers 1${pin ? ` on CPU ${SERVER_CPU}` : ''} ` +
        `(arus dns --db does not sign: its snapshots carry no dnssec). arus-signed: the mix above with DO set on every query. NX rows: a new file of ${NX_QUERIES.toLocaleString('en-US')} names each run, A, EDNS 1232, no ECS; arus-nx-do asks each once (checked), arus-nx may go round its file`,
    );
  }
  console.log('');

  const servers = new Map<Kind, Server>();
  const results = new Map<Kind, DnsperfResult[]>();
  let control: Awaited<ReturnType<typeof startSignedControl>> | undefined;
  const seeds: Record<string, number> = { 'arus-nx-do': 1, 'arus-nx': 2 };
  /** The file each row's dnsperf sends: the mix, the mix with DO, or (NX rows) a file of new names for this run (0: the warm-up). */
  const fileFor = (kind: Kind, run: number): string => {
    if (kind === 'arus-signed') return doFile;
    if (kind !== 'arus-nx-do' && kind !== 'arus-nx') return file;
    const path = join(dir, `${kind}-${run}.bin`);
    writeNxQueryFile(path, run === 0 ? 50_000 : NX_QUERIES, 1000 + 10 * run + seeds[kind], kind === 'arus-nx-do');
    return path;
  };
  const nxSample = (seed: number, n: number, dnssecOk: boolean) => {
    const path = join(dir, `sample-${seed}.bin`);
    writeNxQueryFile(path, n, seed, dnssecOk);
    return readQueryFile(path);
  };
  /** Every query of the DO file (before the runs) or its first 2,000 (after); NX names other than the runs' (1,000 before, 500 after). */
  const checkSigned = async (when: 'before' | 'after') => {
    for (const [kind, s] of servers) {
      if (kind === 'arus-signed') {
        const all = readQueryFile(doFile);
        console.log(await checkSignedReplies(s, when === 'before' ? all : all.slice(0, 2000), `${when === 'before' ? 'every query of the DO file' : "the DO file's first 2,000"}, ${when} the runs`));
      } else if (kind === 'arus-nx-do' || kind === 'arus-nx') {
        const n = when === 'before' ? 1000 : 500;
        const dnssecOk = kind === 'arus-nx-do';
        console.log(await checkSignedReplies(s, nxSample(when === 'before' ? 7 : 8, n, dnssecOk), `NX names not in the runs' files, ${dnssecOk ? 'DO set' : 'no DO'}, ${when} the runs`));
      }
    }
    const signed = servers.get('arus-signed');
    const unsigned = servers.get('arus');
    if (when === 'before' && signed && unsigned) console.log(await checkSameSteering(signed, unsigned, readQueryFile(file)));
  };
  const dnsperf = (port: number, seconds: number, path: string) => runDnsperf({ port, file: path, seconds, outstanding: OUTSTANDING, clients: CLIENTS, cpu: pin ? CLIENT_CPU : undefined });
  let failed = false;
  try {
    if (zone) control = await startSignedControl(zone.db, pin ? String(CLIENT_CPU) : undefined);
    // All stay up and the runs alternate, so that the noise of a shared machine falls on each alike.
    for (const kind of kinds) {
      const s = kind === 'bare' ? await startBare(pin) : isSigned(kind) ? await startSignedNode(kind, control!.url, zone!, dir, pin) : await startNode(kind, dbs, pin);
      servers.set(kind, s);
      const warm = fileFor(kind, 0);
      await dnsperf(s.port, 2, warm); // warm-up: JIT and caches
      if (warm !== file && warm !== doFile) rmSync(warm);
      results.set(kind, []);
    }
    if (zone) await checkSigned('before');
    for (let run = 1; run <= RUNS; run++)
      for (const [kind, s] of servers) {
        const path = fileFor(kind, run);
        const before = s.metrics ? await scrape(s.metrics, countersOf(s)) : undefined;
        const r = await dnsperf(s.port, SECONDS, path);
        if (path !== file && path !== doFile) rmSync(path);
        results.get(kind)!.push(r);
        const counted = before ? await checkCounters(s, before, r) : undefined;
        console.log(
          `run ${run} ${kind.padEnd(11)}: ${Math.round(r.qps)} q/s, lost ${r.lost}, p50 ${r.p50ms.toFixed(2)} ms, p99 ${r.p99ms.toFixed(2)} ms; ${r.rcodes}` +
            (counted ? `; node: ${counted.arus_dns_queries_total} queries, ${counted.arus_dns_rrl_limited_total} rate-limited` : '') +
            (counted && isSigned(kind) ? `, ${counted.arus_dns_truncated_total} truncated, snapshots applied ${counted.arus_snapshot_applied_total}` : ''),
        );
      }
    if (zone) await checkSigned('after');
  } catch (err) {
    failed = true;
    console.error(`\nFAILED: ${(err as Error).message}`);
  } finally {
    // Every server told to stop at once, then control: `arus dns --control` on SIGTERM closes its HTTP
    // agent (a graceful undici close, which waits for the snapshot stream) before it aborts the stream,
    // so it exits only once control has closed that stream.
    const stopping = [...servers].map(([kind, s]) => [kind, s, s.stop()] as const);
    const controlExit = control?.arus.stop();
    for (const [kind, s, exit] of stopping) {
      const errors = s.arus?.errors.length ?? 0;
      const code = await exit;
      if (s.arus) console.log(`${kind}: exit ${code}${errors ? `, ${errors} error log lines: ${JSON.stringify(s.arus.errors.slice(0, 3))}` : ''}`);
    }
    if (control) {
      const errors = control.arus.errors.length;
      console.log(`control (signed rows): exit ${await controlExit}${errors ? `, ${errors} error log lines: ${JSON.stringify(control.arus.errors.slice(0, 3))}` : ''}`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  printResults(results, signUs);
  if (failed) process.exit(1);
}

await bench();
