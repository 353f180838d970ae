// DNS throughput benchmark: Arus's server against a bare node:dgram socket that
// answers every query with one fixed reply (the platform's ceiling), both
// driven by dnsperf with the same query mix.
//
//   npm run bench:dns
//
// Environment: BENCH_SECONDS (20), BENCH_RUNS (3, median reported),
// BENCH_OUTSTANDING (dnsperf -q, 100), BENCH_CLIENTS (dnsperf -c, 1),
// BENCH_SERVER_CPU (1), BENCH_CLIENT_CPU (0), BENCH_QUERIES (queries in the
// file, 20000), BENCH_ONLY (arus | bare), BENCH_RRL (on | off, on).
//
// Response rate limiting: dnsperf sends every query from 127.0.0.1, which is
// exempt by default, and would be limited to 20 replies a second if it were
// not. So the bench turns the exemption off and sets a rate no run reaches
// (1,000,000/s): the limiter's bookkeeping runs for every query and limits
// none. BENCH_RRL=off turns it off, to measure what it costs.
//
// dnsperf adds at most one fixed EDNS option to every query (-E), so the ECS
// mix comes from a binary query file instead (-B: length-prefixed wire-format
// messages, sent as they are with the ID rewritten), written here with a
// different client subnet, name, type and letter case on each query.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { closeSync, createReadStream, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { defaultConfig, ecs, query, servingState } from '../src/dns/fixtures.js';
import { createResponder } from '../src/dns/responder.js';
import { createDnsServer } from '../src/dns/server.js';
import { silentLogger } from '../src/log.js';
import { seededRandom } from '../src/steer/steer.js';

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const SECONDS = env('BENCH_SECONDS', 20);
const RUNS = env('BENCH_RUNS', 3);
const OUTSTANDING = env('BENCH_OUTSTANDING', 100);
const CLIENTS = env('BENCH_CLIENTS', 1);
const SERVER_CPU = env('BENCH_SERVER_CPU', 1);
const CLIENT_CPU = env('BENCH_CLIENT_CPU', 0);
const QUERIES = env('BENCH_QUERIES', 20_000);
const ONLY = process.env.BENCH_ONLY;
const RRL = process.env.BENCH_RRL !== 'off';
/** Limiting on, never reached (see above). */
const RRL_SETTINGS = RRL ? { enabled: true, exempt: [], responsesPerSecond: 1_000_000 } : { enabled: false };

/** Client networks by country (/16s; each query asks from a random /24 inside one). */
const SUBNETS: Record<string, string[]> = {
  ID: ['36.66.0.0', '114.124.0.0', '182.253.0.0', '110.136.0.0'],
  SG: ['165.21.0.0', '116.86.0.0', '220.255.0.0'],
  TH: ['171.96.0.0', '184.22.0.0', '223.24.0.0'],
  PH: ['112.198.0.0', '49.144.0.0', '180.190.0.0'],
  MY: ['175.136.0.0', '60.48.0.0'],
  VN: ['113.160.0.0', '14.160.0.0'],
};

// ---------------------------------------------------------------- servers

async function serve(kind: 'arus' | 'bare'): Promise<void> {
  const state = servingState(defaultConfig(), 1);
  const responder = createResponder({ getState: () => state, log: silentLogger(), rrl: RRL_SETTINGS });
  let port: number;
  if (kind === 'arus') {
    const server = createDnsServer({ listen: [{ address: '127.0.0.1', port: 0 }], responder, log: silentLogger() });
    port = (await server.start()).udp[0].port;
    process.on('SIGTERM', () => {
      process.stdout.write(`${JSON.stringify({ stats: responder.stats })}\n`);
      void server.stop().then(() => process.exit(0));
    });
  } else {
    // The same bytes Arus would send for a typical query, with only the ID copied in.
    const fixed = responder(query({ name: 'api.gslb.example.com', opt: { options: [ecs(1, 24, [36, 66, 1])] } }), { address: '127.0.0.1' }, 'udp')!;
    const socket = dgram.createSocket('udp4');
    socket.on('message', (msg, rinfo) => {
      const reply = Buffer.allocUnsafe(fixed.length);
      fixed.copy(reply);
      reply[0] = msg[0];
      reply[1] = msg[1];
      socket.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    for (const set of [socket.setRecvBufferSize, socket.setSendBufferSize]) {
      try {
        set.call(socket, 4 * 1024 * 1024);
      } catch {
        // the kernel's cap applies
      }
    }
    port = socket.address().port;
    process.on('SIGTERM', () => socket.close(() => process.exit(0)));
  }
  process.stdout.write(`${JSON.stringify({ port })}\n`);
}

function startServer(kind: 'arus' | 'bare', pin: boolean): Promise<{ child: ChildProcess; port: number; stop(): Promise<string> }> {
  const self = fileURLToPath(import.meta.url);
  const node = [process.execPath, '--import', 'tsx', self, '--serve', kind];
  const [cmd, ...args] = pin ? ['taskset', '-c', String(SERVER_CPU), ...node] : node;
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const output: string[] = [];
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${kind} server exited (${code}) before listening`)));
    lines.on('line', (line) => {
      output.push(line);
      const msg = JSON.parse(line) as { port?: number };
      if (msg.port)
        resolve({
          child,
          port: msg.port,
          stop: () =>
            new Promise((done) => {
              child.removeAllListeners('exit');
              child.once('exit', () => done(output.join('\n')));
              child.kill('SIGTERM');
            }),
        });
    });
  });
}

// ---------------------------------------------------------------- queries

/** The query file (dnsperf -B) and a description of its mix. */
function queryFile(path: string): string {
  const random = seededRandom(2026);
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)];
  const countries = Object.keys(SUBNETS);
  const mixCase = (name: string) => [...name].map((c) => (random() < 0.5 ? c.toUpperCase() : c)).join('');
  const frames: Buffer[] = [];
  const counts = { ecs: 0, a: 0, aaaa: 0, pinned: 0, apex: 0, nxdomain: 0 };
  for (let i = 0; i < QUERIES; i++) {
    const r = random();
    let name = 'api.gslb.example.com';
    let type = 1;
    if (r < 0.7) counts.a++;
    else if (r < 0.9) (type = 28), counts.aaaa++;
    else if (r < 0.95) (name = `${pick(['sg', 'jkt', 'bkk', 'mnl'])}.api.gslb.example.com`), counts.pinned++;
    else if (r < 0.98) (name = 'gslb.example.com'), (type = pick([2, 6])), counts.apex++;
    else (name = `x${Math.floor(random() * 1e6)}.gslb.example.com`), counts.nxdomain++;
    const withEcs = random() < 0.9;
    let options: ReturnType<typeof ecs>[] = [];
    if (withEcs) {
      counts.ecs++;
      const [a, b] = pick(SUBNETS[pick(countries)]).split('.').map(Number);
      options = [ecs(1, 24, [a, b, Math.floor(random() * 256)])];
    }
    const message = query({ id: 0, name: mixCase(name), type, opt: { size: 1232, options } });
    frames.push(Buffer.from([message.length >> 8, message.length & 0xff]), message);
  }
  writeFileSync(path, Buffer.concat(frames));
  const pct = (n: number) => `${Math.round((n / QUERIES) * 100)}%`;
  return (
    `${QUERIES} queries: api A ${pct(counts.a)}, api AAAA ${pct(counts.aaaa)}, pinned <region>.api A ${pct(counts.pinned)}, ` +
    `apex NS/SOA ${pct(counts.apex)}, NXDOMAIN ${pct(counts.nxdomain)}; ECS /24 on ${pct(counts.ecs)} ` +
    `from ${Object.values(SUBNETS).flat().length} /16s in ${countries.join(', ')}; the rest located by the resolver address; random letter case`
  );
}

// ---------------------------------------------------------------- dnsperf

type Result = { qps: number; completed: number; lost: number; p99ms: number; avgms: number };

// dnsperf -v prints one line per answered query with its latency: written to a
// file and read after the run, so that the bench itself takes no CPU meanwhile.
async function dnsperf(port: number, file: string, seconds: number, pin: boolean): Promise<Result> {
  const args = ['-B', '-d', file, '-s', '127.0.0.1', '-p', String(port), '-l', String(seconds), '-q', String(OUTSTANDING), '-c', String(CLIENTS), '-t', '2', '-v'];
  const [cmd, ...rest] = pin ? ['taskset', '-c', String(CLIENT_CPU), 'dnsperf', ...args] : ['dnsperf', ...args];
  const outPath = `${file}.out`;
  const out = openSync(outPath, 'w');
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(cmd, rest, { stdio: ['ignore', out, 'inherit'] });
    child.once('error', reject);
    child.once('close', resolve);
  });
  closeSync(out);
  const latencies: number[] = [];
  const stats: string[] = [];
  for await (const line of createInterface({ input: createReadStream(outPath) })) {
    // Verbose lines: "> NOERROR <query> <latency seconds>".
    if (line.startsWith('> ')) {
      const latency = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (Number.isFinite(latency)) latencies.push(latency);
    } else stats.push(line);
  }
  rmSync(outPath, { force: true });
  const text = stats.join('\n');
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  if (code !== 0 || Number.isNaN(num(/Queries per second:\s+([\d.]+)/))) throw new Error(`dnsperf failed (${code}):\n${text}`);
  latencies.sort((a, b) => a - b);
  return {
    qps: num(/Queries per second:\s+([\d.]+)/),
    completed: num(/Queries completed:\s+(\d+)/),
    lost: num(/Queries lost:\s+(\d+)/),
    p99ms: (latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? NaN) * 1000,
    avgms: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function bench(): Promise<void> {
  if (spawnSync('dnsperf', ['-h']).error) {
    console.error('dnsperf not found on PATH (Debian: apt-get install dnsperf)');
    process.exit(1);
  }
  const pin = !spawnSync('taskset', ['-c', '0', 'true']).error;
  const dir = mkdtempSync(join(tmpdir(), 'arus-bench-'));
  const file = join(dir, 'queries.bin');
  const mix = queryFile(file);
  console.log(`Arus DNS benchmark: ${RUNS} run(s) of ${SECONDS} s per server, dnsperf -q ${OUTSTANDING} -c ${CLIENTS}`);
  console.log(RRL ? 'response rate limiting: on for every query, at 1,000,000/s per network (never reached)' : 'response rate limiting: off (BENCH_RRL=off)');
  console.log(pin ? `pinned: server on CPU ${SERVER_CPU}, dnsperf on CPU ${CLIENT_CPU}` : 'taskset not found: nothing pinned');
  console.log(`mix: ${mix}\n`);

  // Both servers stay up and the runs alternate, so that the noise of a shared machine falls on both alike.
  const kinds = (['bare', 'arus'] as const).filter((k) => !ONLY || ONLY === k);
  const results: Record<string, Result[]> = {};
  const servers: Partial<Record<(typeof kinds)[number], Awaited<ReturnType<typeof startServer>>>> = {};
  try {
    for (const kind of kinds) {
      servers[kind] = await startServer(kind, pin);
      await dnsperf(servers[kind]!.port, file, 2, pin); // warm-up: JIT and caches
      results[kind] = [];
    }
    for (let run = 1; run <= RUNS; run++) {
      for (const kind of kinds) {
        const r = await dnsperf(servers[kind]!.port, file, SECONDS, pin);
        results[kind].push(r);
        console.log(`run ${run} ${kind.padEnd(4)}: ${Math.round(r.qps)} q/s, p99 ${r.p99ms.toFixed(2)} ms, lost ${r.lost}`);
      }
    }
  } finally {
    for (const kind of kinds) {
      const out = await servers[kind]?.stop();
      if (kind === 'arus' && out) {
        const stats = out.split('\n').map((l) => JSON.parse(l) as { stats?: Record<string, number> }).find((m) => m.stats)?.stats;
        if (stats)
          console.log(
            `arus responder: ${stats.queries} queries, ${stats.errors} errors, ${stats.steerCalls} steer() calls, ${stats.servfail} SERVFAIL, ${stats.formerr} FORMERR, ` +
              `${stats.rrlDropped + stats.rrlSlipped} rate-limited`,
          );
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }

  const row = (kind: string) => {
    const rs = results[kind];
    if (!rs) return undefined;
    return { qps: median(rs.map((r) => r.qps)), p99: median(rs.map((r) => r.p99ms)), avg: median(rs.map((r) => r.avgms)), lost: median(rs.map((r) => r.lost)) };
  };
  const arus = row('arus');
  const bare = row('bare');
  const pad = (s: string, n: number) => s.padStart(n);
  console.log(`\n${'server'.padEnd(28)}${pad('answered q/s', 14)}${pad('avg ms', 9)}${pad('p99 ms', 9)}${pad('lost', 7)}`);
  for (const [label, r] of [
    ['bare node:dgram (ceiling)', bare],
    ['arus', arus],
  ] as const) {
    if (r) console.log(`${label.padEnd(28)}${pad(String(Math.round(r.qps)), 14)}${pad(r.avg.toFixed(2), 9)}${pad(r.p99.toFixed(2), 9)}${pad(String(r.lost), 7)}`);
  }
  if (arus && bare) console.log(`\narus / bare: ${(arus.qps / bare.qps).toFixed(2)}  (median of ${RUNS})`);
}

if (process.argv[2] === '--serve') await serve(process.argv[3] as 'arus' | 'bare');
else await bench();
