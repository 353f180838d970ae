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

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Pool, request } from 'undici';
import { startBalancer } from '../src/balancer/role.js';
import { balancerSchema, strategies } from '../src/config/schema.js';
import { silentLogger } from '../src/log.js';
import { createSimServer } from '../src/sim/server.js';
import { seededRandom } from '../src/steer/steer.js';

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const SECONDS = env('BENCH_SECONDS', 20);
const RUNS = env('BENCH_RUNS', 1);
const LOAD = env('BENCH_LOAD', 0.75);
const EMBED_RATE = env('BENCH_EMBED_RATE', 10);
const DRAIN_SECONDS = env('BENCH_DRAIN_SECONDS', 60);
const WARMUP_SECONDS = env('BENCH_WARMUP_SECONDS', 5);
const CONCURRENCY = env('BENCH_CONCURRENCY', 64);
const HAPROXY_THREADS = env('BENCH_HAPROXY_THREADS', 1);
const ONLY = process.env.BENCH_ONLY;
/** Only the setups whose label contains one of these (comma-separated), e.g. `gpu,leastconn`. */
const SETUPS = process.env.BENCH_SETUPS?.split(',').filter(Boolean);
/** Arus's maxConcurrentPerInstance; the document's default (16) unless set. */
const ARUS_MAX_CONCURRENT = process.env.BENCH_ARUS_MAX_CONCURRENT ? Number(process.env.BENCH_ARUS_MAX_CONCURRENT) : undefined;

const MODEL = 'llama-3-8b';
const EMBED_MODEL = 'bge-small';
const EMBED_CONCURRENCY = env('BENCH_EMBED_CONCURRENCY', 64);
const BATCH_WINDOW_MS = env('BENCH_BATCH_WINDOW_MS', 5);
const BATCH_MAX = env('BENCH_BATCH_MAX', 32);
const SIMS = [
  { id: 'slow', tokensPerSecond: 40 },
  { id: 'mid', tokensPerSecond: 80 },
  { id: 'fast', tokensPerSecond: 160 },
].map((s) => ({ ...s, maxRunning: 4, ttftMs: 50 }));
const MIN_TOKENS = 80;
const MAX_TOKENS = 400;
/** Fleet decode throughput (tokens/s) with every slot busy. */
const FLEET_TPS = SIMS.reduce((sum, s) => sum + s.tokensPerSecond * s.maxRunning, 0);
const MEAN_TOKENS = (MIN_TOKENS + MAX_TOKENS) / 2;
const GEN_RATE = (LOAD * FLEET_TPS) / MEAN_TOKENS;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const self = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------- child processes

type Child = { child: ChildProcess; info: Record<string, unknown>; stop(): Promise<void> };

/** Runs this file with `--serve <kind> <arg>`; resolves with the first JSON line it prints. */
function child(kind: string, arg: unknown): Promise<Child> {
  const prof = kind === 'arus' && process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
  if (kind === 'arus' && process.env.BENCH_ARUS_NODE_FLAGS) prof.push(...process.env.BENCH_ARUS_NODE_FLAGS.split(' ').filter(Boolean));
  const proc = spawn(process.execPath, [...prof, '--import', 'tsx', self, '--serve', kind, JSON.stringify(arg ?? null)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! });
  return new Promise((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`${kind} exited (${code}) before listening`)));
    lines.once('line', (line) => {
      proc.removeAllListeners('exit');
      resolve({
        child: proc,
        info: JSON.parse(line) as Record<string, unknown>,
        stop: () =>
          new Promise<void>((done) => {
            if (proc.exitCode !== null || proc.signalCode !== null) return done();
            const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
            proc.once('exit', () => (clearTimeout(t), done()));
            proc.kill('SIGTERM');
          }),
      });
    });
  });
}

async function serve(kind: string, arg: unknown): Promise<void> {
  const log = silentLogger();
  let stop: () => Promise<void>;
  if (kind === 'sims') {
    const sims = SIMS.map((s) => createSimServer({ host: '127.0.0.1', port: 0, model: MODEL, tokensPerSecond: s.tokensPerSecond, maxRunning: s.maxRunning, ttftMs: s.ttftMs, log }));
    const ports = [];
    for (const sim of sims) ports.push((await sim.start()).port);
    process.stdout.write(`${JSON.stringify({ ports })}\n`);
    stop = async () => void (await Promise.all(sims.map((s) => s.stop())));
  } else if (kind === 'embedsims') {
    // Embedding-only instances whose fixed cost per call (20 ms) dominates the cost per input (1 ms).
    const sims = [0, 1].map(() => createSimServer({ host: '127.0.0.1', port: 0, model: EMBED_MODEL, kinds: ['embeddings'], embedCallMs: 20, embedPerInputMs: 1, log }));
    const ports = [];
    for (const sim of sims) ports.push((await sim.start()).port);
    process.stdout.write(`${JSON.stringify({ ports })}\n`);
    stop = async () => void (await Promise.all(sims.map((s) => s.stop())));
  } else if (kind === 'tiny') {
    // Answers like a model server, 1 ms after the request's body has arrived.
    const body = JSON.stringify({ id: 'x', object: 'chat.completion', model: MODEL, choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }] });
    const models = JSON.stringify({ object: 'list', data: [{ id: MODEL, object: 'model' }] });
    const servers = [0, 1].map(() =>
      createHttpServer((req, res) => {
        req.resume();
        req.on('end', () => {
          if (req.url === '/health') return res.end();
          if (req.url === '/v1/models') return res.writeHead(200, { 'content-type': 'application/json' }).end(models);
          if (req.url === '/metrics') return res.writeHead(200, { 'content-type': 'text/plain' }).end('');
          setTimeout(() => res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body), 1);
        });
      }),
    );
    const ports = [];
    for (const s of servers) {
      s.keepAliveTimeout = 60_000;
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      ports.push((s.address() as { port: number }).port);
    }
    process.stdout.write(`${JSON.stringify({ ports })}\n`);
    stop = async () => {
      for (const s of servers) s.closeAllConnections(), s.close();
    };
  } else if (kind === 'arus') {
    const { strategy, ports, model = MODEL, batching, maxConcurrent } = arg as { strategy: string; ports: number[]; model?: string; batching?: boolean; maxConcurrent?: number };
    const doc = balancerSchema.parse({
      listen: '127.0.0.1:0',
      strategy,
      // A 30 s slow start would still be ramping through a short run; every instance is up before the run.
      slowStartMs: 0,
      ...(maxConcurrent ? { maxConcurrentPerInstance: maxConcurrent } : {}),
      ...(batching ? { batching: { embeddings: { windowMs: BATCH_WINDOW_MS, maxBatch: BATCH_MAX } } } : {}),
      instances: ports.map((port, i) => ({ id: `i${i}`, url: `http://127.0.0.1:${port}`, models: [model] })),
    });
    const b = await startBalancer({ region: 'bench', id: 'bench', doc, log, listen: { address: '127.0.0.1', port: 0 } });
    process.stdout.write(`${JSON.stringify({ port: b.port })}\n`);
    stop = async () => {
      const s = b.proxy.stats() as unknown as Record<string, unknown>;
      process.stderr.write(`  arus stats: ${JSON.stringify(summarizeStats(s))}\n`);
      await b.stop();
    };
  } else throw new Error(`unknown --serve ${kind}`);
  process.on('SIGTERM', () => void stop().then(() => process.exit(0)));
}

function summarizeStats(s: Record<string, unknown>) {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'instances' && v && typeof v === 'object') {
      out.instances = Object.fromEntries(
        Object.entries(v as Record<string, Record<string, unknown>>).map(([id, i]) => [id, { requests: i.requests, failures: i.failures }]),
      );
    } else if (typeof v !== 'object') out[k] = v;
  }
  return out;
}

// ---------------------------------------------------------------- haproxy

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function startHaproxy(dir: string, balance: 'roundrobin' | 'leastconn', ports: number[]): Promise<{ port: number; pid?: number; stop(): Promise<void> }> {
  const port = await freePort();
  const cfg = join(dir, `haproxy-${balance}-${port}.cfg`);
  writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 4000',
      `  nbthread ${HAPROXY_THREADS}`,
      'defaults',
      '  mode http',
      '  option http-keep-alive',
      '  timeout connect 5s',
      '  timeout client 600s',
      '  timeout server 600s',
      '  timeout http-keep-alive 60s',
      'frontend fe',
      `  bind 127.0.0.1:${port}`,
      '  default_backend be',
      'backend be',
      `  balance ${balance}`,
      ...ports.map((p, i) => `  server s${i} 127.0.0.1:${p}`),
      '',
    ].join('\n'),
  );
  const proc = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'inherit'] });
  let exited = false;
  proc.once('exit', () => (exited = true));
  for (let i = 0; ; i++) {
    if (exited) throw new Error('haproxy exited before listening');
    try {
      const r = await request(`http://127.0.0.1:${port}/v1/models`, { headersTimeout: 1000 });
      await r.body.dump();
      break;
    } catch {
      if (i > 50) throw new Error('haproxy not listening after 5 s');
      await sleep(100);
    }
  }
  return {
    port,
    pid: proc.pid,
    stop: () =>
      new Promise<void>((done) => {
        if (exited) return done();
        const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
        proc.once('exit', () => (clearTimeout(t), done()));
        proc.kill('SIGTERM');
      }),
  };
}

// ---------------------------------------------------------------- workload

type Arrival = { at: number; kind: 'chat' | 'embed'; maxTokens: number };

/** Seeded Poisson arrivals of both kinds over `seconds`, sorted by time (ms). */
function schedule(seconds: number, seed = 2026): Arrival[] {
  const random = seededRandom(seed);
  const out: Arrival[] = [];
  const poisson = (rate: number, kind: Arrival['kind']) => {
    for (let t = -Math.log(1 - random()) / rate; t < seconds; t += -Math.log(1 - random()) / rate)
      out.push({ at: t * 1000, kind, maxTokens: kind === 'chat' ? MIN_TOKENS + Math.floor(random() * (MAX_TOKENS - MIN_TOKENS + 1)) : 0 });
  };
  poisson(GEN_RATE, 'chat');
  poisson(EMBED_RATE, 'embed');
  return out.sort((a, b) => a.at - b.at);
}

type Sample = { kind: Arrival['kind']; ms: number; ok: boolean; status: number; instance?: string; at: number; maxTokens: number };
type MixedResult = { all: Stats; chat: Stats; embed: Stats; completedPerSec: number; errors: number; unfinished: number; statuses: Record<string, number>; spread: Record<string, number> };
type Stats = { n: number; p50: number; p99: number };

const pct = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)] : NaN);
const stats = (xs: number[]): Stats => {
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 0.5), p99: pct(s, 0.99) };
};

async function mixedRun(port: number, arrivals: Arrival[]): Promise<MixedResult> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 2048, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 });
  const samples: Sample[] = [];
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  const t0 = performance.now();
  let lastDone = t0;
  const inflight = new Set<Promise<void>>();
  const fire = (a: Arrival) => {
    const body =
      a.kind === 'chat'
        ? { model: MODEL, messages: [{ role: 'user', content: 'tell me a story about a river' }], max_tokens: a.maxTokens }
        : { model: MODEL, input: `embed this sentence number ${Math.floor(a.at)}` };
    const start = performance.now();
    const p = pool
      .request({ method: 'POST', path: a.kind === 'chat' ? '/v1/chat/completions' : '/v1/embeddings', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: abort.signal })
      .then(async (r) => {
        await r.body.dump({ limit: 1 << 20 });
        const end = performance.now();
        lastDone = Math.max(lastDone, end);
        const inst = r.headers['x-arus-instance'];
        samples.push({ kind: a.kind, ms: end - start, ok: r.statusCode === 200, status: r.statusCode, instance: typeof inst === 'string' ? inst : undefined, at: a.at, maxTokens: a.maxTokens });
      })
      .catch(() => {
        if (!abort.signal.aborted) samples.push({ kind: a.kind, ms: performance.now() - start, ok: false, status: 0, at: a.at, maxTokens: a.maxTokens });
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };
  for (const a of arrivals) {
    const wait = t0 + a.at - performance.now();
    if (wait > 1) await sleep(wait);
    fire(a);
  }
  const deadline = performance.now() + DRAIN_SECONDS * 1000;
  while (inflight.size && performance.now() < deadline) await sleep(50);
  const unfinished = inflight.size;
  abort.abort();
  await Promise.allSettled([...inflight]);
  await pool.destroy();
  const ok = samples.filter((s) => s.ok);
  const statuses: Record<string, number> = {};
  for (const s of samples) if (!s.ok) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
  if (process.env.BENCH_VERBOSE)
    for (const x of [...ok].sort((a, b) => b.ms - a.ms).slice(0, 6)) console.log(`    slow: ${x.kind} at ${(x.at / 1000).toFixed(1)} s, ${x.maxTokens} tokens on ${x.instance ?? '?'}: ${x.ms.toFixed(0)} ms`);
  const spread: Record<string, number> = {};
  for (const s of ok) if (s.kind === 'chat' && s.instance) spread[s.instance] = (spread[s.instance] ?? 0) + 1;
  return {
    all: stats(ok.map((s) => s.ms)),
    chat: stats(ok.filter((s) => s.kind === 'chat').map((s) => s.ms)),
    embed: stats(ok.filter((s) => s.kind === 'embed').map((s) => s.ms)),
    completedPerSec: ok.length / ((lastDone - t0) / 1000),
    errors: samples.length - ok.length + unfinished,
    unfinished,
    statuses,
    spread,
  };
}

/** Closed loop: CONCURRENCY clients, each sending its next request when the last one is answered. */
async function overheadRun(port: number, seconds: number): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONCURRENCY, pipelining: 1, keepAliveTimeout: 60_000 });
  const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
  const lat: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const s = performance.now();
        try {
          const r = await pool.request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body });
          await r.body.dump();
          if (r.statusCode === 200) lat.push(performance.now() - s);
          else errors++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  await pool.destroy();
  const s = stats(lat);
  return { rps: lat.length / elapsed, p50: s.p50, p99: s.p99, errors };
}

/** Closed loop: EMBED_CONCURRENCY clients, each sending its next single-input embeddings call when the last one is answered. */
async function embedRun(port: number, seconds: number): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: EMBED_CONCURRENCY, pipelining: 1, keepAliveTimeout: 60_000 });
  const lat: number[] = [];
  let errors = 0;
  let n = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: EMBED_CONCURRENCY }, async (_, c) => {
      while (performance.now() < end) {
        const body = JSON.stringify({ model: EMBED_MODEL, input: `sentence ${c}-${n++}` });
        const s = performance.now();
        try {
          const r = await pool.request({ method: 'POST', path: '/v1/embeddings', headers: { 'content-type': 'application/json' }, body });
          const text = await r.body.text();
          if (r.statusCode === 200 && (JSON.parse(text) as { data: unknown[] }).data.length === 1) lat.push(performance.now() - s);
          else errors++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  await pool.destroy();
  const st = stats(lat);
  return { rps: lat.length / elapsed, p50: st.p50, p99: st.p99, errors };
}

// ---------------------------------------------------------------- bench

const median = (xs: number[]) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function waitHealthy(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      const r = await request(`http://127.0.0.1:${port}/health`, { headersTimeout: 1000 });
      await r.body.dump();
      if (r.statusCode === 200) return;
    } catch {
      // not yet
    }
    await sleep(100);
  }
  throw new Error(`balancer on ${port} not healthy after 10 s`);
}

type Setup = { label: string; start(ports: number[]): Promise<{ port: number; pid?: number; stop(): Promise<void> }> };

/** CPU seconds (user + system) a process has used so far, from /proc; NaN where there is none. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
}

function setups(dir: string, overhead: boolean): Setup[] {
  // In the overhead run neither proxy may queue: HAProxy's servers have no maxconn, so Arus's cap is the clients' number.
  const maxConcurrent = overhead ? (ARUS_MAX_CONCURRENT ?? CONCURRENCY) : ARUS_MAX_CONCURRENT;
  const arus = (strategy: string): Setup => ({
    label: `arus ${strategy}`,
    async start(ports) {
      const c = await child('arus', { strategy, ports, maxConcurrent });
      const port = c.info.port as number;
      await waitHealthy(port);
      // Let a second readiness round scrape fresh /metrics gauges before traffic.
      await sleep(1200);
      return { port, pid: c.child.pid, stop: c.stop };
    },
  });
  const ha = (balance: 'roundrobin' | 'leastconn'): Setup => ({ label: `haproxy ${balance}`, start: (ports) => startHaproxy(dir, balance, ports) });
  if (overhead) return [{ label: 'direct (no proxy)', start: async (ports) => ({ port: ports[0], stop: async () => {} }) }, arus('round-robin'), ha('roundrobin')];
  const mine = strategies.filter((s) => s !== 'weighted');
  return [...mine.map(arus), ha('roundrobin'), ha('leastconn')].filter((s) => !SETUPS || SETUPS.some((x) => s.label.includes(x)));
}

async function bench(): Promise<void> {
  const haproxy = !spawnSync('haproxy', ['-v']).error;
  if (!haproxy) console.log('haproxy not found on PATH (Debian: apt-get install haproxy): the HAProxy columns and ratios are skipped');
  const dir = mkdtempSync(join(tmpdir(), 'arus-bench-balancer-'));
  const cleanup: (() => Promise<void>)[] = [];
  const arrivals = schedule(SECONDS);
  const warmup = schedule(WARMUP_SECONDS, 7);
  const gens = arrivals.filter((a) => a.kind === 'chat').length;
  console.log(`Arus balancer benchmark: ${RUNS} run(s) of ${SECONDS} s per setup`);
  console.log(
    `instances: ${SIMS.map((s) => `${s.id} ${s.tokensPerSecond} tok/s × ${s.maxRunning}`).join(', ')}, ttft 50 ms; fleet ${FLEET_TPS} tok/s\n` +
      `offered: ${GEN_RATE.toFixed(2)} generations/s (max_tokens ${MIN_TOKENS}..${MAX_TOKENS}, ${Math.round(LOAD * 100)} % of fleet tokens/s if spread by speed) + ${EMBED_RATE} embeddings/s, Poisson, open loop; ${gens} generations + ${arrivals.length - gens} embeddings per run\n`,
  );
  const mixed: Record<string, MixedResult[]> = {};
  const over: Record<string, (Awaited<ReturnType<typeof overheadRun>> & { cpuUs: number })[]> = {};
  const batch: Record<string, Awaited<ReturnType<typeof embedRun>>[]> = {};
  try {
    if (!ONLY || ONLY === 'mixed') {
      const sims = await child('sims', null);
      cleanup.push(sims.stop);
      const ports = sims.info.ports as number[];
      for (let run = 1; run <= RUNS; run++) {
        const list = setups(dir, false);
        // Every other run in reverse order: slow drift of a shared machine should not favour one setup.
        for (const setup of run % 2 ? list : [...list].reverse()) {
          if (!haproxy && setup.label.startsWith('haproxy')) continue;
          const s = await setup.start(ports);
          try {
            // The same warm-up for every setup (a balancer in service has seen traffic before), drained before the measured run.
            if (warmup.length) await mixedRun(s.port, warmup);
            const r = await mixedRun(s.port, arrivals);
            (mixed[setup.label] ??= []).push(r);
            console.log(
              `run ${run} ${setup.label.padEnd(24)} p50 ${r.all.p50.toFixed(0)} ms, p99 ${r.all.p99.toFixed(0)} ms (gen p99 ${r.chat.p99.toFixed(0)}, embed p99 ${r.embed.p99.toFixed(0)}), ` +
                `${r.completedPerSec.toFixed(2)} completed/s, errors ${r.errors}${r.errors ? ` ${JSON.stringify(r.statuses)}${r.unfinished ? ` unfinished ${r.unfinished}` : ''}` : ''}` +
                (Object.keys(r.spread).length ? `, generations per instance ${JSON.stringify(r.spread)}` : ''),
            );
          } finally {
            await s.stop();
          }
          await sleep(500);
        }
      }
      await sims.stop();
      cleanup.pop();
    }
    if (!ONLY || ONLY === 'overhead') {
      const tiny = await child('tiny', null);
      cleanup.push(tiny.stop);
      const ports = tiny.info.ports as number[];
      for (let run = 1; run <= RUNS; run++) {
        const list = setups(dir, true);
        for (const setup of run % 2 ? list : [...list].reverse()) {
          if (!haproxy && setup.label.startsWith('haproxy')) continue;
          const s = await setup.start(ports);
          try {
            await overheadRun(s.port, 2); // warm-up: JIT, connections
            const cpu0 = cpuSeconds(s.pid);
            const r = { ...(await overheadRun(s.port, SECONDS)), cpuUs: NaN };
            // The proxy's own CPU per answered request: on a shared machine this varies far less than req/s.
            r.cpuUs = ((cpuSeconds(s.pid) - cpu0) * 1e6) / (r.rps * SECONDS);
            (over[setup.label] ??= []).push(r);
            console.log(
              `run ${run} overhead ${setup.label.padEnd(20)} ${Math.round(r.rps)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, errors ${r.errors}` +
                (Number.isFinite(r.cpuUs) ? `, proxy CPU ${r.cpuUs.toFixed(0)} µs/req` : ''),
            );
          } finally {
            await s.stop();
          }
        }
      }
    }
    if (!ONLY || ONLY === 'batching') {
      const sims = await child('embedsims', null);
      cleanup.push(sims.stop);
      const ports = sims.info.ports as number[];
      for (let run = 1; run <= RUNS; run++) {
        // Alternate which goes first: slow drift of a shared machine should not favour one side.
        const order = run % 2 ? [false, true] : [true, false];
        for (const batching of order) {
          const label = batching ? 'batched' : 'unbatched';
          const c = await child('arus', { strategy: 'gpu', ports, model: EMBED_MODEL, batching });
          const port = c.info.port as number;
          try {
            await waitHealthy(port);
            await embedRun(port, 2); // warm-up
            const r = await embedRun(port, SECONDS);
            (batch[label] ??= []).push(r);
            console.log(`run ${run} batching ${label.padEnd(10)} ${Math.round(r.rps)} calls/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, errors ${r.errors}`);
          } finally {
            await c.stop();
          }
        }
      }
      await sims.stop();
      cleanup.pop();
    }
  } finally {
    for (const stop of cleanup.reverse()) await stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const pad = (s: string, n: number) => s.padStart(n);
  const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
  if (Object.keys(mixed).length) {
    console.log(`\nmixed workload (median of ${RUNS}; latency of answered requests, ms)`);
    console.log(`${'setup'.padEnd(24)}${pad('p50', 7)}${pad('p99', 7)}${pad('gen p50', 9)}${pad('gen p99', 9)}${pad('emb p50', 9)}${pad('emb p99', 9)}${pad('done/s', 8)}${pad('errors', 8)}`);
    for (const [label, rs] of Object.entries(mixed)) {
      const m = (f: (r: MixedResult) => number) => median(rs.map(f));
      console.log(
        `${label.padEnd(24)}${pad(f0(m((r) => r.all.p50)), 7)}${pad(f0(m((r) => r.all.p99)), 7)}${pad(f0(m((r) => r.chat.p50)), 9)}${pad(f0(m((r) => r.chat.p99)), 9)}` +
          `${pad(f0(m((r) => r.embed.p50)), 9)}${pad(f0(m((r) => r.embed.p99)), 9)}${pad(m((r) => r.completedPerSec).toFixed(2), 8)}${pad(f0(m((r) => r.errors)), 8)}`,
      );
    }
    const lc = mixed['haproxy leastconn'];
    if (lc) {
      console.log(`\nratios to HAProxy leastconn measured in the same run (median over runs): p50, p99, generations p99, done/s`);
      for (const [label, rs] of Object.entries(mixed))
        console.log(
          `${label.padEnd(24)}${pad(medianRatio(rs, lc, (r) => r.all.p50).toFixed(2), 7)}${pad(medianRatio(rs, lc, (r) => r.all.p99).toFixed(2), 7)}` +
            `${pad(medianRatio(rs, lc, (r) => r.chat.p99).toFixed(2), 9)}${pad(medianRatio(rs, lc, (r) => r.completedPerSec).toFixed(2), 8)}`,
        );
    }
    const ratio = medianRatio(mixed['arus gpu'], lc, (r) => r.all.p99);
    if (Number.isFinite(ratio)) console.log(`\ngpu-aware p99 / HAProxy leastconn p99: ${ratio.toFixed(2)}  (target ≤ 0.8: ${ratio <= 0.8 ? 'met' : 'MISSED'})`);
    const genRatio = medianRatio(mixed['arus gpu'], lc, (r) => r.chat.p99);
    if (Number.isFinite(genRatio)) console.log(`  generations only: ${genRatio.toFixed(2)}`);
  }
  if (Object.keys(over).length) {
    console.log(`\nproxy overhead: 1-ms backend (2 instances), ${CONCURRENCY} closed-loop clients, ${SECONDS} s (median of ${RUNS}); HAProxy nbthread ${HAPROXY_THREADS}`);
    console.log(`${'setup'.padEnd(24)}${pad('req/s', 9)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}${pad('errors', 8)}${pad('CPU µs/req', 12)}`);
    for (const [label, rs] of Object.entries(over)) {
      const m = (f: (r: (typeof rs)[number]) => number) => median(rs.map(f));
      console.log(
        `${label.padEnd(24)}${pad(f0(m((r) => r.rps)), 9)}${pad(m((r) => r.p50).toFixed(2), 9)}${pad(m((r) => r.p99).toFixed(2), 9)}${pad(f0(m((r) => r.errors)), 8)}${pad(f0(m((r) => r.cpuUs)), 12)}`,
      );
    }
    const ratio = medianRatio(over['arus round-robin'], over['haproxy roundrobin'], (r) => r.rps);
    if (Number.isFinite(ratio)) console.log(`\nproxy throughput Arus / HAProxy: ${ratio.toFixed(2)}  (target ≥ 0.5: ${ratio >= 0.5 ? 'met' : 'MISSED'})`);
    const cpuRatio = medianRatio(over['haproxy roundrobin'], over['arus round-robin'], (r) => r.cpuUs);
    if (Number.isFinite(cpuRatio)) console.log(`proxy CPU per request HAProxy / Arus: ${cpuRatio.toFixed(2)}  (the throughput ratio each would reach with a core to itself)`);
  }

  if (Object.keys(batch).length) {
    console.log(`\nbatching: single-input embeddings, ${EMBED_CONCURRENCY} closed-loop clients, 2 embedding instances (20 ms per call + 1 ms per input), ${SECONDS} s (median of ${RUNS}); window ${BATCH_WINDOW_MS} ms, max ${BATCH_MAX}`);
    console.log(`${'setup'.padEnd(24)}${pad('calls/s', 9)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}${pad('errors', 8)}`);
    for (const [label, rs] of Object.entries(batch)) {
      const m = (f: (r: (typeof rs)[number]) => number) => median(rs.map(f));
      console.log(`${label.padEnd(24)}${pad(f0(m((r) => r.rps)), 9)}${pad(m((r) => r.p50).toFixed(1), 9)}${pad(m((r) => r.p99).toFixed(1), 9)}${pad(f0(m((r) => r.errors)), 8)}`);
    }
    const ratio = medianRatio(batch.batched, batch.unbatched, (r) => r.rps);
    const p99Ratio = medianRatio(batch.batched, batch.unbatched, (r) => r.p99);
    if (Number.isFinite(ratio))
      console.log(`\nbatched / unbatched throughput: ${ratio.toFixed(2)}, p99 ${p99Ratio.toFixed(2)}  (target ≥ 2 at p99 ≤ 1: ${ratio >= 2 && p99Ratio <= 1 ? 'met' : 'MISSED'})`);
  }
}

/** Median over runs of a[run] / b[run]: each ratio is taken between two setups measured in the same run. */
function medianRatio<T>(a: T[] | undefined, b: T[] | undefined, f: (r: T) => number): number {
  if (!a || !b) return NaN;
  return median(a.slice(0, b.length).map((r, i) => f(r) / f(b[i])));
}

if (process.argv[2] === '--serve') await serve(process.argv[3], JSON.parse(process.argv[4] ?? 'null'));
else await bench();
