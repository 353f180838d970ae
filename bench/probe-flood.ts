// Probe-report flood against `arus control`, in plain text and under mutual
// TLS, alternating in the same run: 25 agents, each with its own credential
// (a bound probe token; under mutual TLS a client certificate for
// spiffe://arus/probe/<region>/<agent>), send 1,000 reports of 1,000 results
// as fast as 32 connections carry them (past each agent's rate, so control
// also refuses with 429). Reports control's CPU per report, reports a second,
// RSS, and the TLS / plain ratios.
//
//   npm run bench:probe-flood
//
// Environment: BENCH_RUNS (3; medians reported), BENCH_REPORTS (1000), BENCH_RESULTS (1000).

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Agent, fetch } from 'undici';
import { openDatabase } from '../src/db/database.js';
import { createTokenStore } from '../src/db/tokens.js';
import { createAuthority, issue, issueClient } from '../src/tls/certs.js';
import { freePort, median } from './common.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const REPORTS = Number(process.env.BENCH_REPORTS ?? 1000);
const RESULTS = Number(process.env.BENCH_RESULTS ?? 1000);
const AGENTS = 25;
const CONCURRENCY = 32;
const REGIONS = ['sg', 'jkt', 'bkk', 'mnl'];
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'arus.js');
const ADMIN = 'bench-admin-token';
type Mode = 'plain' | 'tls';

function start(args: string[], env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`arus ${args[0]} exited with ${code}`)));
    createInterface({ input: proc.stdout }).on('line', (line) => {
      if (line.includes('"msg":"ready"')) resolve(proc);
    });
  });
}

const stop = (p: ChildProcess) => new Promise<void>((r) => (p.exitCode !== null ? r() : (p.once('exit', () => r()), p.kill('SIGTERM'))));
/** The process's user + system CPU time (ms), from /proc. */
const cpuMs = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
};
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

type Setup = { dir: string; tls: { server: string[]; agents: { cert: string; key: string }[]; admin: { cert: string; key: string }; ca: string } };

async function setup(): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'arus-bench-flood-'));
  const file = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name));
  const ca = await createAuthority();
  const server = await issue(ca, { name: 'control', hosts: ['127.0.0.1'], usage: 'server' });
  const agents = [];
  for (let a = 0; a < AGENTS; a++) agents.push(await issueClient(ca, `probe/${REGIONS[a % 4]}/flood-${a}`));
  const caFile = file('ca.crt', ca.cert);
  const admin = await issueClient(ca, 'admin/bench');
  return { dir, tls: { admin, server: ['--tls-cert', file('server.crt', server.cert), '--tls-key', file('server.key', server.key), '--tls-client-ca', caFile], agents, ca: ca.cert } };
}

/** One flood against a fresh control in `mode`. */
async function flood(mode: Mode, s: Setup, run: number) {
  const db = join(s.dir, `arus-${mode}-${run}.db`);
  const dbh = openDatabase(db);
  const tokens = Array.from({ length: AGENTS }, (_, a) => createTokenStore(dbh).create({ role: 'probe', agent: `flood-${a}`, region: REGIONS[a % 4] }).token);
  dbh.$client.close();
  const port = await freePort();
  const control = await start(['control', '--db', db, '--regions', join(ROOT, 'regions'), '--api-listen', `127.0.0.1:${port}`, ...(mode === 'tls' ? s.tls.server : [])], { ARUS_ADMIN_TOKEN: ADMIN });
  const base = `${mode === 'tls' ? 'https' : 'http'}://127.0.0.1:${port}`;
  const dispatchers = s.tls.agents.map((c) => new Agent({ connections: 4, connect: mode === 'tls' ? { ca: s.tls.ca, cert: c.cert, key: c.key } : {} }));
  try {
    const regions = (await (await fetch(`${base}/v1/regions`, { headers: { authorization: `Bearer ${ADMIN}` }, dispatcher: new Agent({ connect: { ca: s.tls.ca, ...s.tls.admin } }) })).json()) as { regions: { id: string; zones: { id: string; endpoints: { address: string }[] }[] }[] };
    const endpoints = regions.regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints.map((e) => `${r.id}/${z.id}/${e.address}`)));
    const statuses: Record<number, number> = {};
    const pid = control.pid!;
    let rssMax = rssMb(pid);
    const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssMb(pid))), 50);
    const cpu0 = cpuMs(pid);
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < REPORTS; i = next++) {
          const a = Math.floor(i / (REPORTS / AGENTS));
          const at = Date.now();
          const results = Array.from({ length: RESULTS }, (_, k) => ({ endpoint: endpoints[k % endpoints.length], ok: true, rttMs: 1 + (k % 7), at: at - (RESULTS - k) }));
          const res = await fetch(`${base}/v1/probes/report`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...(mode === 'plain' ? { authorization: `Bearer ${tokens[a]}` } : {}) },
            body: JSON.stringify({ agent: { id: `flood-${a}`, region: REGIONS[a % 4] }, targets: 1, results }),
            dispatcher: dispatchers[a],
          });
          await res.arrayBuffer();
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuMs(pid) - cpu0;
    clearInterval(sampler);
    const unexpected = Object.keys(statuses).map(Number).filter((x) => x !== 200 && x !== 429);
    if (unexpected.length) throw new Error(`${mode}: unexpected statuses ${JSON.stringify(statuses)}`);
    return { seconds, perS: REPORTS / seconds, cpuUsPerReport: (cpu * 1000) / REPORTS, rssMax, statuses };
  } finally {
    await Promise.all(dispatchers.map((d) => d.close()));
    await stop(control);
  }
}

async function main() {
  const s = await setup();
  const out: Record<Mode, Awaited<ReturnType<typeof flood>>[]> = { plain: [], tls: [] };
  for (let run = 1; run <= RUNS; run++)
    for (const mode of (run % 2 ? ['plain', 'tls'] : ['tls', 'plain']) as Mode[]) {
      const r = await flood(mode, s, run);
      out[mode].push(r);
      console.log(`run ${run} ${mode.padEnd(5)}: ${r.perS.toFixed(0)} reports/s, control CPU ${r.cpuUsPerReport.toFixed(0)} µs/report, RSS ≤ ${r.rssMax.toFixed(0)} MB, ${JSON.stringify(r.statuses)}`);
    }
  const m = (mode: Mode, k: 'perS' | 'cpuUsPerReport' | 'rssMax') => median(out[mode].map((r) => r[k]));
  console.log(`\nprobe flood: ${REPORTS} reports × ${RESULTS} results from ${AGENTS} agents over ${CONCURRENCY} connections (median of ${RUNS})`);
  console.table({
    'reports/s': { plain: m('plain', 'perS').toFixed(0), 'mutual TLS': m('tls', 'perS').toFixed(0), 'TLS / plain': (m('tls', 'perS') / m('plain', 'perS')).toFixed(2) },
    "control's CPU per report (µs)": { plain: m('plain', 'cpuUsPerReport').toFixed(0), 'mutual TLS': m('tls', 'cpuUsPerReport').toFixed(0), 'TLS / plain': (m('tls', 'cpuUsPerReport') / m('plain', 'cpuUsPerReport')).toFixed(2) },
    'RSS at most (MB)': { plain: m('plain', 'rssMax').toFixed(0), 'mutual TLS': m('tls', 'rssMax').toFixed(0), 'TLS / plain': (m('tls', 'rssMax') / m('plain', 'rssMax')).toFixed(2) },
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
