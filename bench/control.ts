// The control plane's benchmark, in one run:
//   1. API write throughput and p99: `arus control` on SQLite alone, and three
//      replicas on a 3-member etcd cluster (client TLS), the same closed-loop
//      writers (PUT /v1/services/<own name>), spread over the replicas.
//   2. Leader takeover, BENCH_KILLS (10) times: the leader replica killed
//      (SIGKILL) and, at the same moment, Jakarta's model servers made to
//      fail: the seconds until another replica leads, and until a DNS node
//      following all three stops sending Indonesia to Jakarta. Median and max.
//
//   npm run bench:control
//
// Environment: BENCH_SECONDS (10, per write phase), BENCH_WRITERS (8), BENCH_KILLS (10).

import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Packet } from 'dns2';
import { ecsOf, query } from '../src/dns/fixtures.js';
import type { SimServer } from '../src/sim/server.js';
import { BIN, freePort, ROOT, tempDir } from '../test/helpers/arus.js';
import { startEtcdCluster, type EtcdCluster } from '../test/helpers/etcd.js';
import { regionsWithChecks, REGION_IDS, startZoneSims } from '../test/helpers/regions.js';
import { median } from './common.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WRITERS = Number(process.env.BENCH_WRITERS ?? 8);
const KILLS = Number(process.env.BENCH_KILLS ?? 10);
const ADMIN = 'bench-admin-token';
const JKT = new Set(['127.0.1.21', '127.0.1.22']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Proc = { proc: ChildProcess; url?: string; stop(): Promise<void> };

/** `arus <args>` until its ready line; its API URL from it when it has one. */
function start(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  const proc = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ARUS_ADMIN_TOKEN: ADMIN, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const stop = () => new Promise<void>((r) => (proc.exitCode !== null || proc.signalCode !== null ? r() : (proc.once('exit', () => r()), proc.kill('SIGKILL'))));
  return new Promise((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`arus ${args[0]} exited with ${code}`)));
    createInterface({ input: proc.stdout }).on('line', (line) => {
      if (!line.includes('"msg":"ready"')) return;
      const api = (JSON.parse(line) as { api?: string }).api;
      resolve({ proc, url: api, stop });
    });
  });
}

const api = (url: string, method: string, path: string, body?: unknown) =>
  fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined, signal: AbortSignal.timeout(5000) });

/** Closed-loop writers, each putting its own service, spread over `urls`: acknowledged writes a second and latency. */
async function writeLoad(urls: string[]) {
  const lat: number[] = [];
  let errors = 0;
  const end = performance.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; performance.now() < end; i++) {
        const t0 = performance.now();
        const res = await api(urls[w % urls.length], 'PUT', `/v1/services/w${w}`, { name: `w${w}`, ttl: 30 + (i % 30), policy: 'geo', failMode: 'open', maxAnswers: 8 }).catch(() => undefined);
        if (res) await res.arrayBuffer();
        if (res?.ok) lat.push(performance.now() - t0);
        else errors++;
      }
    }),
  );
  lat.sort((a, b) => a - b);
  return { perS: lat.length / SECONDS, p50: lat[Math.floor(lat.length * 0.5)] ?? NaN, p99: lat[Math.floor(lat.length * 0.99)] ?? NaN, errors };
}

const etcdFlags = (c: EtcdCluster) => ['--etcd', c.endpoints.join(','), '--etcd-ca', c.ca!, '--etcd-cert', c.clientCert!, '--etcd-key', c.clientKey!];

async function replicas(c: EtcdCluster, dir: string, regions: string, ports: number[]): Promise<Proc[]> {
  return Promise.all(ports.map((p, i) => startReplica(c, dir, regions, p, i)));
}
const startReplica = (c: EtcdCluster, dir: string, regions: string, port: number, i: number) =>
  start(['control', ...etcdFlags(c), '--db', join(dir, `replica-${i}.db`), '--replica-id', `c${i}`, '--regions', regions, '--api-listen', `127.0.0.1:${port}`]);

async function writePhase(c: EtcdCluster, dir: string, regions: string) {
  const embedded = await start(['control', '--db', join(dir, 'embedded.db'), '--regions', regions, '--api-listen', '127.0.0.1:0']);
  const sqlite = await writeLoad([embedded.url!]);
  await embedded.stop();
  const reps = await replicas(c, dir, regions, await Promise.all([0, 1, 2].map(() => freePort())));
  const etcd = await writeLoad(reps.map((r) => r.url!));
  await Promise.all(reps.map((r) => r.stop()));
  await c.ctl(['del', '--prefix', '/arus/']);
  return { sqlite, etcd };
}

const socket = dgram.createSocket('udp4');
let nextId = 1;
/** Indonesia's A answers from the DNS node. */
function indonesia(port: number): Promise<string[]> {
  const id = nextId++ & 0xffff;
  return new Promise((resolve) => {
    const timer = setTimeout(() => (socket.off('message', on), resolve(['timeout'])), 300);
    const on = (msg: Buffer) => {
      if (msg.readUInt16BE(0) !== id) return;
      clearTimeout(timer);
      socket.off('message', on);
      resolve(Packet.parse(msg).answers.map((a) => (a as { address: string }).address).sort());
    };
    socket.on('message', on);
    socket.send(query({ id, name: 'api.gslb.example.com', type: 1, opt: { options: [ecsOf('36.66.0.0/24')] } }), port, '127.0.0.1');
  });
}

async function leaderOf(urls: string[]): Promise<string | undefined> {
  for (const u of urls) {
    const res = await api(u, 'GET', '/v1/cluster').catch(() => undefined);
    if (!res?.ok) continue;
    const body = (await res.json()) as { replicas: { id: string; role: string }[] };
    return body.replicas.find((r) => r.role === 'leader')?.id;
  }
  return undefined;
}

/** Kills the leader and fails Jakarta at the same moment; seconds to a new leader and to Indonesia off Jakarta. */
async function takeover(reps: Proc[], urls: string[], sims: Map<string, SimServer>, dnsPort: number) {
  const before = await leaderOf(urls);
  const index = Number(before?.slice(1));
  const t0 = performance.now();
  await reps[index].stop();
  await Promise.all(['jkt-a', 'jkt-b'].map((z) => sims.get(z)!.setFault({ kind: 'error' })));
  const others = urls.filter((_, i) => i !== index);
  let leaderS: number | undefined;
  let failoverS: number | undefined;
  while ((leaderS === undefined || failoverS === undefined) && performance.now() - t0 < 30_000) {
    if (leaderS === undefined) {
      const l = await leaderOf(others);
      if (l && l !== before) leaderS = (performance.now() - t0) / 1000;
    }
    if (failoverS === undefined && !(await indonesia(dnsPort)).some((a) => JKT.has(a) || a === 'timeout')) failoverS = (performance.now() - t0) / 1000;
    await sleep(50);
  }
  return { index, leaderS: leaderS ?? NaN, failoverS: failoverS ?? NaN };
}

async function main() {
  const dir = tempDir('arus-bench-control-');
  const cluster = await startEtcdCluster({ members: 3, tls: true });
  const sims = await startZoneSims();
  const regions = regionsWithChecks(dir, (z) => sims.get(z)?.port);
  try {
    const writes = await writePhase(cluster, dir, regions);
    const ports = await Promise.all([0, 1, 2].map(() => freePort()));
    const reps = await replicas(cluster, dir, regions, ports);
    const urls = reps.map((r) => r.url!);
    const flags = (role: string, id: string) => ['--etcd', cluster.endpoints.join(','), '--etcd-ca', cluster.ca!, '--etcd-cert', cluster.clientCert!, '--etcd-key', cluster.clientKey!, '--role', role, ...id.split(' ')];
    const token = async (role: string, binding: string) => {
      const out = await new Promise<string>((resolve) => {
        let text = '';
        const p = spawn(process.execPath, [BIN, 'token', 'create', ...flags(role, binding)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] });
        p.stdout.on('data', (d) => (text += d));
        p.on('exit', () => resolve(text));
      });
      return /arus_[A-Za-z0-9_-]+/.exec(out)![0];
    };
    const probes = await Promise.all(REGION_IDS.map(async (r) => start(['probe', '--control', urls.join(','), '--token', await token('probe', `--agent probe-${r} --region ${r}`), '--health-listen', 'off', '--interval', '500'])));
    const dnsPort = await freePort();
    const dns = await start(['dns', '--control', urls.join(','), '--token', await token('dns', '--node dns-1'), '--snapshot', join(dir, 'dns.json'), '--dns-listen', `127.0.0.1:${dnsPort}`, '--metrics-listen', '127.0.0.1:0']);
    const results: { leaderS: number; failoverS: number }[] = [];
    for (let k = 1; k <= KILLS; k++) {
      while ((await indonesia(dnsPort)).some((a) => !JKT.has(a))) await sleep(200);
      await sleep(3000); // every agent's votes are in, on every replica
      const r = await takeover(reps, urls, sims, dnsPort);
      results.push(r);
      console.log(`kill ${k}: c${r.index} killed; a new leader in ${r.leaderS.toFixed(2)} s; Indonesia off Jakarta in ${r.failoverS.toFixed(2)} s`);
      await Promise.all(['jkt-a', 'jkt-b'].map((z) => sims.get(z)!.setFault({ kind: 'none' })));
      reps[r.index] = await startReplica(cluster, dir, regions, ports[r.index], r.index);
    }
    report(writes, results);
    await Promise.all([dns, ...probes, ...reps].map((p) => p.stop()));
  } finally {
    socket.close();
    await Promise.all([...sims.values()].map((s) => s.stop()));
    await cluster.stop();
  }
}

function report(writes: Awaited<ReturnType<typeof writePhase>>, results: { leaderS: number; failoverS: number }[]) {
  const row = (r: Awaited<ReturnType<typeof writeLoad>>) => ({ 'writes/s': r.perS.toFixed(0), 'p50 ms': r.p50.toFixed(1), 'p99 ms': r.p99.toFixed(1), errors: r.errors });
  console.log(`\nAPI writes: ${WRITERS} closed-loop writers, ${SECONDS} s each (PUT /v1/services/<own>)`);
  console.table({ 'SQLite alone (arus control)': row(writes.sqlite), '3 replicas on 3-member etcd (client TLS)': row(writes.etcd) });
  console.log(`etcd / SQLite: throughput ${(writes.etcd.perS / writes.sqlite.perS).toFixed(2)}, p99 ${(writes.etcd.p99 / writes.sqlite.p99).toFixed(2)}`);
  const l = results.map((r) => r.leaderS);
  const f = results.map((r) => r.failoverS);
  console.log(`\nleader takeover (lease TTL 2 s), ${results.length} kills: median ${median(l).toFixed(2)} s, max ${Math.max(...l).toFixed(2)} s (target: TTL + 1 s = 3 s)`);
  console.log(`Indonesia off Jakarta with the leader killed at the same moment: median ${median(f).toFixed(2)} s, max ${Math.max(...f).toFixed(2)} s (target ≤ 3 s)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
