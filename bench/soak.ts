// Soak: `arus up` under steady dnsperf load while model servers crash and come
// back and the admin API is written to, all at once, for a set time. A checker
// asks DNS itself from many client subnets and counts every answer that holds
// the address of an endpoint that had been down (dead or drained) for longer
// than the fail-over budget. Prints wrong answers, errors, crashes and the RSS
// of the arus process over time; exits 1 if any answer was wrong or anything
// crashed.
//
//   npm run soak                      # 600 s
//   SOAK_SECONDS=120 npm run soak     # a quick run
//
// Environment: SOAK_SECONDS (600), SOAK_QPS (dnsperf -Q, 5000), SOAK_BUDGET_MS
// (3000), SOAK_MAX_DOWN (endpoints dead or drained at once, 3 of 8).
//
// Every port is free-picked on 127.0.0.1; the database and regions are in a
// temporary folder. The regions are copies of regions/ without the demo
// balancers, each zone's check pointed at its own `arus sim` process, so that
// an endpoint can be killed (SIGKILL, then started again on the same port),
// crashed (POST /admin/fault crash: the listener closes) or made to fail its
// checks (POST /admin/fault error: HTTP 500s).
//
// The fail-over budget: probes every 500 ms and fall 2 put a dead endpoint out
// of the answers 0.5–1.0 s after it dies, plus the check's own time (a refused
// connect or a 500 is immediate) and the report and snapshot publish (tens of
// ms); bench:failover measures 0.8–1.1 s, the target is 1.5 s. The budget is
// twice the target, 3 s, because this soak runs beside dnsperf on a shared
// machine where a probe round can be late by a scheduling hiccup: an answer is
// wrong when its query was *sent* more than 3 s after the endpoint died (or its
// drain was acknowledged). The slowest removal actually seen is printed, so a
// budget that is too loose shows.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Packet } from 'dns2';
import { ecs, query } from '../src/dns/fixtures.js';
import { REGION_IDS, regionsWithChecks } from '../test/helpers/regions.js';
import { ALL_SUBNETS, freePort, sleep, writeQueryFile } from './common.js';

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const SECONDS = env('SOAK_SECONDS', 600);
const QPS = env('SOAK_QPS', 5000);
const BUDGET_MS = env('SOAK_BUDGET_MS', 3000);
const MAX_DOWN = env('SOAK_MAX_DOWN', 3);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'arus.js');
const ADMIN = 'soak-admin-token';


const random = Math.random;
const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)];
const between = (lo: number, hi: number) => lo + random() * (hi - lo);


// ---------------------------------------------------------------- processes

const counts = {
  crashes: [] as string[], // processes that exited without being told to
  arusErrorLogs: 0,
  dnsTimeouts: 0,
  dnsServfail: 0,
  dnsOtherRcode: 0,
  dnsEmpty: 0,
  dnsUnknownAddress: 0,
  checkerQueries: 0,
  api: { ok: 0, status5xx: 0, status4xx: 0, failed: 0 },
  flaps: { kill: 0, crash: 0, error: 0 },
  drains: 0,
  weightWrites: 0,
  ttlWrites: 0,
};
let stopping = false;
const started = new Set<ChildProcess>();

/** Starts `arus <args>`; resolves with the process and its "ready" log line. */
function startArus(args: string[], name: string, onLog?: (entry: Record<string, unknown>) => void): Promise<{ proc: ChildProcess; ready: Record<string, unknown> }> {
  const proc = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ARUS_ADMIN_TOKEN: ADMIN, ARUS_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.add(proc);
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  return new Promise((resolve, reject) => {
    let ready = false;
    proc.once('exit', (code, signal) => {
      if (!ready) reject(new Error(`arus ${name} exited (${code ?? signal}) before ready\n${stderr}`));
      else if (!stopping && !(proc as ChildProcess & { expected?: boolean }).expected) {
        counts.crashes.push(`${name} exited (${code ?? signal}) ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
      }
    });
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      onLog?.(entry);
      if (!ready && entry.msg === 'ready') {
        ready = true;
        resolve({ proc, ready: entry });
      }
    });
  });
}

function kill(proc: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  (proc as ChildProcess & { expected?: boolean }).expected = true;
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    proc.once('exit', () => r());
    proc.kill(signal);
  });
}

// ---------------------------------------------------------------- endpoints

type Endpoint = {
  region: string;
  zone: string;
  address: string;
  port: number;
  proc?: ChildProcess;
  /** Since when it has been dead (its checks fail), if it is. */
  deadSince?: number;
  how?: 'kill' | 'crash' | 'error';
  /** Since when it has been drained (the API's answer came back), if it is. */
  drainedSince?: number;
  /** The last time (query sent) the checker saw it in an answer during the current outage. */
  seenDuringOutage?: number;
  /** Taken by the flapper or the writer (set before their first await, so that two never pick the same one). */
  busy?: boolean;
};

const endpoints: Endpoint[] = [];
const byAddress = new Map<string, Endpoint>();
/** Per outage kind: ms from death (or drain) to the last answer that held it; 0 when no answer held it. */
const removals: Record<string, number[]> = { kill: [], crash: [], error: [], drain: [] };
const latencies: number[] = []; // checker answers, ms
const timeouts: number[] = []; // checker timeouts: when the query was sent
const wrong: string[] = [];

const unavailable = () => endpoints.filter((e) => e.busy).length;
const available = () => endpoints.filter((e) => !e.busy);

async function startSim(e: Endpoint): Promise<void> {
  const { proc } = await startArus(['sim', '--listen', `127.0.0.1:${e.port}`], `sim ${e.zone}`);
  e.proc = proc;
}

async function fault(e: Endpoint, kind: 'crash' | 'error' | 'none'): Promise<void> {
  // A standalone sim whose listener closes has nothing left to run and exits (0), as a crashed server would.
  if (kind === 'crash') (e.proc as ChildProcess & { expected?: boolean }).expected = true;
  if (kind === 'none' && e.how === 'crash') {
    // Its listener (admin route included) is gone: restarted, as a supervisor would.
    await kill(e.proc!);
    await startSim(e);
    return;
  }
  const res = await fetch(`http://127.0.0.1:${e.port}/admin/fault`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind }) });
  if (!res.ok) throw new Error(`fault ${kind} on ${e.zone}: ${res.status}`);
  await res.arrayBuffer();
}

/** Takes an endpoint down one of three ways, holds it down 4–15 s, brings it back. */
async function flap(e: Endpoint): Promise<void> {
  const how = pick(['kill', 'crash', 'error'] as const);
  e.how = how;
  counts.flaps[how]++;
  if (how === 'kill') await kill(e.proc!);
  else await fault(e, how);
  e.deadSince = Date.now();
  e.seenDuringOutage = undefined;
  await sleep(between(4000, 15_000));
  closeOutage(e, e.deadSince, how);
  // Up again from the moment it is being restored: later answers with it are right.
  e.deadSince = undefined;
  if (how === 'kill') await startSim(e);
  else await fault(e, 'none');
  e.how = undefined;
}

function closeOutage(e: Endpoint, since: number, kind: string): void {
  removals[kind].push(e.seenDuringOutage !== undefined ? e.seenDuringOutage - since : 0);
  e.seenDuringOutage = undefined;
}

async function flapper(end: number): Promise<void> {
  const running: Promise<void>[] = [];
  while (Date.now() < end - 20_000) {
    await sleep(between(1500, 4000));
    if (unavailable() >= MAX_DOWN) continue;
    const e = pick(available());
    e.busy = true;
    running.push(flap(e).finally(() => (e.busy = false)));
  }
  await Promise.all(running);
}

// ---------------------------------------------------------------- admin API

async function api(method: string, path: string, body?: unknown): Promise<unknown> {
  try {
    const res = await fetch(`${apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    if (res.status >= 500) counts.api.status5xx++;
    else if (res.status >= 400) {
      counts.api.status4xx++;
      console.error(`API ${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
    } else counts.api.ok++;
    return res.ok ? JSON.parse(text) : undefined;
  } catch (err) {
    counts.api.failed++;
    console.error(`API ${method} ${path}: ${(err as Error).message}`);
    return undefined;
  }
}

async function drain(e: Endpoint): Promise<void> {
  const path = `/v1/regions/${e.region}/zones/${e.zone}/endpoints/${e.address}`;
  counts.drains++;
  if (!(await api('POST', `${path}/drain`, { reason: 'soak' }))) return;
  e.drainedSince = Date.now();
  e.seenDuringOutage = undefined;
  await sleep(between(3000, 10_000));
  closeOutage(e, e.drainedSince, 'drain');
  e.drainedSince = undefined; // up again from the moment the undrain is sent
  await api('POST', `${path}/undrain`);
}

async function writer(end: number): Promise<void> {
  const running: Promise<void>[] = [];
  while (Date.now() < end - 15_000) {
    await sleep(between(1000, 3000));
    const r = random();
    if (r < 0.3) {
      if (unavailable() >= MAX_DOWN) continue;
      const e = pick(available());
      e.busy = true;
      running.push(drain(e).finally(() => (e.busy = false)));
    } else if (r < 0.7) {
      const id = pick(REGION_IDS);
      const region = (await api('GET', `/v1/regions/${id}`)) as { zones: { endpoints: { weight?: number }[] }[] } | undefined;
      if (!region) continue;
      for (const z of region.zones) for (const ep of z.endpoints) ep.weight = Math.round(between(20, 200));
      await api('PATCH', `/v1/regions/${id}`, { zones: region.zones });
      counts.weightWrites++;
    } else {
      await api('PATCH', '/v1/services/api', { ttl: Math.round(between(10, 60)) });
      counts.ttlWrites++;
    }
  }
  await Promise.all(running);
}

// ---------------------------------------------------------------- checker

let apiUrl = '';
// The checker's own lag: a reply read late by this process is not Arus's fault, and shows here.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

/** Asks for api A from every subnet in turn (and without ECS), every 20 ms, and judges each answer. */
async function checker(port: number, end: number): Promise<void> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  // No timers: when this process lags (the machine is busy), a reply read late is still an answer, with its latency.
  const pending = new Map<number, { sent: number }>();
  socket.on('message', (msg) => {
    const id = msg.readUInt16BE(0);
    const p = pending.get(id);
    if (!p) return;
    pending.delete(id);
    latencies.push(Date.now() - p.sent);
    const rcode = msg[3] & 0x0f;
    if (rcode === 2) return void counts.dnsServfail++;
    if (rcode !== 0) return void counts.dnsOtherRcode++;
    const addresses = Packet.parse(msg)
      .answers.filter((a) => a.type === Packet.TYPE.A)
      .map((a) => (a as { address: string }).address);
    if (addresses.length === 0) return void counts.dnsEmpty++;
    const now = Date.now();
    for (const a of addresses) {
      const e = byAddress.get(a);
      if (!e) {
        counts.dnsUnknownAddress++;
        continue;
      }
      const since = e.deadSince ?? e.drainedSince;
      if (since === undefined) continue;
      e.seenDuringOutage = Math.max(e.seenDuringOutage ?? 0, p.sent);
      if (p.sent - since > BUDGET_MS)
        wrong.push(`${new Date(now).toISOString()} ${a} (${e.zone}) in an answer ${p.sent - since} ms after it was ${e.deadSince !== undefined ? `made dead (${e.how})` : 'drained'}`);
    }
  });
  let id = 0;
  let i = 0;
  const sources = [...ALL_SUBNETS, undefined];
  while (Date.now() < end) {
    id = (id + 1) & 0xffff;
    const net = sources[i++ % sources.length];
    const [a, b] = (net ?? '0.0').split('.').map(Number);
    const options = net ? [ecs(1, 24, [a, b, Math.floor(random() * 256)])] : [];
    const packet = query({ id, name: 'api.gslb.example.com', type: 1, opt: { size: 1232, options } });
    const qid = id;
    const old = pending.get(qid);
    if (old) timeouts.push(old.sent); // asked 65,536 queries ago and never answered
    pending.set(qid, { sent: Date.now() });
    counts.checkerQueries++;
    socket.send(packet, port, '127.0.0.1');
    await sleep(20);
  }
  await sleep(2000);
  for (const p of pending.values()) timeouts.push(p.sent);
  counts.dnsTimeouts = timeouts.length;
  socket.close();
}

// ---------------------------------------------------------------- dnsperf


type Perf = { sent: number; completed: number; lost: number; qps: number; rcodes: Record<string, number>; text: string };

async function dnsperf(port: number, file: string, seconds: number): Promise<Perf> {
  const outPath = `${file}.out`;
  const out = openSync(outPath, 'w');
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('dnsperf', ['-B', '-d', file, '-s', '127.0.0.1', '-p', String(port), '-l', String(seconds), '-Q', String(QPS), '-q', '200', '-t', '2'], { stdio: ['ignore', out, out] });
    child.once('error', reject);
    child.once('close', resolve);
  });
  closeSync(out);
  const text = readFileSync(outPath, 'utf8');
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  if (code !== 0) throw new Error(`dnsperf failed (${code}):\n${text}`);
  const rcodes: Record<string, number> = {};
  for (const m of (/Response codes:\s+(.*)/.exec(text)?.[1] ?? '').matchAll(/([A-Z]+) (\d+)/g)) rcodes[m[1]] = Number(m[2]);
  return { sent: num(/Queries sent:\s+(\d+)/), completed: num(/Queries completed:\s+(\d+)/), lost: num(/Queries lost:\s+(\d+)/), qps: num(/Queries per second:\s+([\d.]+)/), rcodes, text };
}

// ---------------------------------------------------------------- RSS

const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024; // MiB

/** Least-squares slope of (t s, rss MiB) in MiB per hour. */
function slope(samples: { t: number; rss: number }[]): number {
  const n = samples.length;
  if (n < 2) return NaN;
  const mt = samples.reduce((s, x) => s + x.t, 0) / n;
  const mr = samples.reduce((s, x) => s + x.rss, 0) / n;
  const cov = samples.reduce((s, x) => s + (x.t - mt) * (x.rss - mr), 0);
  const vt = samples.reduce((s, x) => s + (x.t - mt) ** 2, 0);
  return (cov / vt) * 3600;
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  if (spawnSync('dnsperf', ['-h']).error) {
    console.error('dnsperf not found on PATH (Debian: apt-get install dnsperf)');
    return 2;
  }
  const dir = mkdtempSync(join(tmpdir(), 'arus-soak-'));
  const children: ChildProcess[] = [];
  try {
    for (const region of REGION_IDS)
      for (const [n, zone] of [`${region}-a`, `${region}-b`].entries()) {
        const address = `127.0.1.${REGION_IDS.indexOf(region) + 1}${n + 1}`;
        const e: Endpoint = { region, zone, address, port: await freePort() };
        endpoints.push(e);
        byAddress.set(address, e);
      }
    await Promise.all(endpoints.map(startSim));
    const regions = regionsWithChecks(dir, (zone) => endpoints.find((e) => e.zone === zone)!.port);
    const { proc: up, ready } = await startArus(
      ['up', '--db', join(dir, 'arus.db'), '--regions', regions, '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off'],
      'up',
      (entry) => {
        if (typeof entry.level === 'number' && entry.level >= 50) {
          counts.arusErrorLogs++;
          if (counts.arusErrorLogs <= 5) console.error(`arus logged: ${JSON.stringify(entry).slice(0, 300)}`);
        }
      },
    );
    children.push(up);
    apiUrl = String(ready.api);
    const dnsPort = (ready.udp as { port: number }[])[0].port;
    for (;;) {
      const h = (await api('GET', '/v1/health')) as { agents: { fresh: boolean }[] } | undefined;
      if (h && h.agents.filter((a) => a.fresh).length === 4) break;
      await sleep(200);
    }
    counts.api.ok = 0;
    await sleep(2000);

    const file = join(dir, 'queries.bin');
    writeQueryFile(file);
    const start = Date.now();
    const end = start + SECONDS * 1000;
    console.log(`Arus soak: ${SECONDS} s; dnsperf at ${QPS} q/s (api A/AAAA, pinned, apex, NXDOMAIN; ECS from ${ALL_SUBNETS.length} /16s on 90 %)`);
    console.log(`flaps: one endpoint every 1.5–4 s killed, crashed or failing (500s) for 4–15 s; API: drains (3–10 s), weight PATCHes, TTL PATCHes every 1–3 s; at most ${MAX_DOWN} of 8 endpoints unavailable at once`);
    console.log(`checker: api A every 20 ms from ${ALL_SUBNETS.length} subnets and the resolver address; wrong = an address dead or drained for more than ${BUDGET_MS} ms when the query was sent\n`);

    const rss: { t: number; rss: number }[] = [];
    const sampler = setInterval(() => {
      // every 5 s; a progress line every minute
      try {
        rss.push({ t: (Date.now() - start) / 1000, rss: rssOf(up.pid!) });
        const last = rss[rss.length - 1];
        if (rss.length % 12 === 1)
          console.log(`t=${Math.round(last.t)} s  rss ${last.rss.toFixed(1)} MiB  checker ${counts.checkerQueries} queries, ${wrong.length} wrong  flaps ${counts.flaps.kill + counts.flaps.crash + counts.flaps.error}  drains ${counts.drains}  crashes ${counts.crashes.length}`);
      } catch {
        // the process is gone: counted as a crash by its exit handler
      }
    }, 5000);
    rss.push({ t: 0, rss: rssOf(up.pid!) });

    const [perf] = await Promise.all([dnsperf(dnsPort, file, SECONDS), checker(dnsPort, end), flapper(end), writer(end)]);
    clearInterval(sampler);
    rss.push({ t: (Date.now() - start) / 1000, rss: rssOf(up.pid!) });
    const upAlive = up.exitCode === null && up.signalCode === null;
    stopping = true;
    const elapsed = (Date.now() - start) / 1000;

    const maxRss = Math.max(...rss.map((s) => s.rss));
    const secondHalf = rss.filter((s) => s.t >= elapsed / 2);
    // The heap's saw-tooth swings tens of MiB between collections: the median of each third shows a trend through it.
    const thirds = [0, 1, 2].map((i) => {
      const xs = rss.filter((s) => s.t >= (elapsed * i) / 3 && s.t < (elapsed * (i + 1)) / 3 + 0.001).map((s) => s.rss).sort((a, b) => a - b);
      return xs[Math.floor(xs.length / 2)] ?? NaN;
    });
    const removalText = Object.entries(removals)
      .map(([kind, xs]) => {
        const s = [...xs].sort((a, b) => a - b);
        return `${kind} ${s.at(-1) ?? '-'} (${s.length ? s[Math.floor(s.length / 2)] : '-'}; ${s.filter((x) => x > 0).length}/${s.length} seen)`;
      })
      .join(', ');
    latencies.sort((a, b) => a - b);
    const q = (f: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * f))] ?? NaN;
    const timeline = () => {
      const buckets = new Map<number, number>();
      for (const t of timeouts) buckets.set(Math.floor((t - start) / 5000) * 5, (buckets.get(Math.floor((t - start) / 5000) * 5) ?? 0) + 1);
      return [...buckets].map(([t, n]) => `${t}: ${n}`).join(', ').slice(0, 400) || 'none';
    };
    console.log(`\nArus soak, ${elapsed.toFixed(0)} s (${new Date().toISOString().slice(0, 10)})`);
    console.table({
      'dnsperf queries sent / answered': `${perf.sent} / ${perf.completed} (${Math.round(perf.qps)} q/s)`,
      'dnsperf lost (timed out)': perf.lost,
      'dnsperf response codes': Object.entries(perf.rcodes).map(([k, v]) => `${k} ${v}`).join(', '),
      'checker queries': counts.checkerQueries,
      'wrong answers (dead or drained > budget)': wrong.length,
      'checker unanswered / SERVFAIL / other rcode / empty / unknown address': `${counts.dnsTimeouts} / ${counts.dnsServfail} / ${counts.dnsOtherRcode} / ${counts.dnsEmpty} / ${counts.dnsUnknownAddress}`,
      'checker latency p50 / p99 / max (ms), answers after 2 s': `${q(0.5)} / ${q(0.99)} / ${latencies.at(-1) ?? NaN}, ${latencies.filter((x) => x > 2000).length}`,
      'checker unanswered in 5 s buckets (t: n)': timeline(),
      'slowest removal seen, ms (median; outages seen in an answer at all)': removalText,
      'soak process event-loop delay p99 / max (ms)': `${(loopDelay.percentile(99) / 1e6).toFixed(0)} / ${(loopDelay.max / 1e6).toFixed(0)}`,
      'flaps: killed / crashed / failing': `${counts.flaps.kill} / ${counts.flaps.crash} / ${counts.flaps.error}`,
      'API writes: drains / weight PATCHes / TTL PATCHes': `${counts.drains} / ${counts.weightWrites} / ${counts.ttlWrites}`,
      'API ok / 4xx / 5xx / failed': `${counts.api.ok} / ${counts.api.status4xx} / ${counts.api.status5xx} / ${counts.api.failed}`,
      'arus error logs': counts.arusErrorLogs,
      crashes: counts.crashes.length,
      'RSS start / end / max (MiB)': `${rss[0].rss.toFixed(1)} / ${rss.at(-1)!.rss.toFixed(1)} / ${maxRss.toFixed(1)}`,
      'RSS median of each third of the run (MiB)': thirds.map((x) => x.toFixed(1)).join(' → '),
      'RSS slope, whole run / second half (MiB/h)': `${slope(rss).toFixed(1)} / ${slope(secondHalf).toFixed(1)}`,
    });
    for (const w of wrong.slice(0, 20)) console.log(`wrong: ${w}`);
    for (const c of counts.crashes) console.log(`crash: ${c}`);
    if (!upAlive) console.log('arus up was not running at the end');
    return wrong.length > 0 || counts.crashes.length > 0 || !upAlive ? 1 : 0;
  } finally {
    stopping = true;
    await Promise.all([...children, ...endpoints.map((e) => e.proc).filter((p): p is ChildProcess => !!p)].map((p) => kill(p, 'SIGTERM')));
    rmSync(dir, { recursive: true, force: true });
  }
}

// Whatever ends this process, no server it started outlives it.
process.on('exit', () => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);

