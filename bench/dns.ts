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
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { defaultConfig, ecs, query, servingState } from '../src/dns/fixtures.js';
import { createResponder } from '../src/dns/responder.js';
import { createDnsServer } from '../src/dns/server.js';
import { silentLogger } from '../src/log.js';
import { median, runDnsperf, writeQueryFile, type DnsperfResult } from './common.js';

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
  const lines = createInterface({ input: child.stdout });
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

// ---------------------------------------------------------------- dnsperf

type Result = DnsperfResult;

const dnsperf = (port: number, file: string, seconds: number, pin: boolean): Promise<Result> =>
  runDnsperf({ port, file, seconds, outstanding: OUTSTANDING, clients: CLIENTS, cpu: pin ? CLIENT_CPU : undefined });


async function bench(): Promise<void> {
  if (spawnSync('dnsperf', ['-h']).error) {
    console.error('dnsperf not found on PATH (Debian: apt-get install dnsperf)');
    process.exit(1);
  }
  const pin = !spawnSync('taskset', ['-c', '0', 'true']).error;
  const dir = mkdtempSync(join(tmpdir(), 'arus-bench-'));
  const file = join(dir, 'queries.bin');
  const mix = writeQueryFile(file, QUERIES);
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
      await dnsperf(servers[kind].port, file, 2, pin); // warm-up: JIT and caches
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
