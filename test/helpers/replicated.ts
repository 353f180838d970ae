// A replicated control plane for black-box tests, started the way an operator
// starts one: a real 3-member etcd cluster over client TLS
// (test/helpers/etcd.ts; fewer members when asked), three `arus control --etcd …` replicas (or as many as asked) on fixed
// loopback ports (so that a killed one restarts where the roles look for it),
// each with its own read model file; and, when asked, `arus dns --control
// URL,URL,URL` nodes (every other one given the list reversed: each streams
// from the first that answers), one `arus probe --control URL,URL,URL` agent per region
// and simulated model servers per zone behind the default regions' checks.
// Every machine credential is a token bound to its identity, made with `arus
// token create --etcd …`.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient } from '../../src/db/etcd/client.js';
import { silentLogger } from '../../src/log.js';
import type { SimServer } from '../../src/sim/server.js';
import { arusAsync, freePort, startArus, tempDir, until, type Running } from './arus.js';
import { digAsync } from './dig.js';
import { startEtcdCluster, type EtcdCluster } from './etcd.js';
import { REGION_IDS, regionsWithChecks, startZoneSims } from './regions.js';

export const ADMIN = 'replicated-admin-token';

export type Replica = {
  id: string;
  url: string;
  /** Its read model's SQLite file. */
  db: string;
  /** Its RFC 2136 listener's port (UDP and TCP) when the lab takes updates. */
  updatePort?: number;
  /** The running process (undefined while killed). */
  run: Running | undefined;
  /** Every log line it printed, across restarts. */
  logs(): Record<string, unknown>[];
  start(): Promise<void>;
  kill9(): Promise<void>;
  /** SIGSTOP / SIGCONT. */
  pause(): void;
  resume(): void;
  pid(): number | undefined;
};

export type DnsNode = { name: string; run: Running; metrics(): Promise<string> };

export type Lab = {
  dir: string;
  etcd: EtcdCluster;
  replicas: Replica[];
  /** Every replica's URL, as the roles are given them. */
  controlUrls: string;
  dns: DnsNode[];
  probes: Running[];
  sims: Map<string, SimServer>;
  /** The etcd flags of `arus control`, `arus token`, `arus apply`. */
  etcdArgs: string[];
  stop(): Promise<void>;
};

type LabOptions = {
  /** DNS nodes to start (default 0). */
  dns?: number;
  /** One probe agent per region and sims behind every zone's check (default false: no checks). */
  probes?: boolean;
  leaseTtlS?: number;
  /** Every replica takes RFC 2136 updates (`--update-listen`), TSIG secrets sealed under this ARUS_TSIG_KEY. */
  updates?: { kek: string };
  /** etcd members (default 3). */
  members?: number;
  /** Replicas (default 3). */
  replicas?: number;
  /** More environment for every replica (ARUS_TSIG_KEY without updates, say). */
  env?: Record<string, string>;
  /** Rewrites the zone's settings (zone.yaml's text) before the first replica seeds them. */
  zone?: (text: string) => string;
};

/** A call to one replica's API as the admin; `body` is sent as JSON. */
export function api(r: Replica | string, path: string, init: { method?: string; body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<Response> {
  const base = typeof r === 'string' ? r : r.url;
  return fetch(`${base}${path}`, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json', ...init.headers },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    signal: AbortSignal.timeout(init.timeoutMs ?? 10_000),
  });
}

/** One Prometheus sample of `text` (NaN when absent). */
export const metric = (text: string, name: string): number => Number(new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1]);

/** A replica's own /metrics, or undefined when it does not answer. */
export async function replicaMetrics(r: Replica): Promise<string | undefined> {
  if (!r.run) return undefined;
  try {
    const res = await fetch(`${r.url}/metrics`, { signal: AbortSignal.timeout(1000) });
    return res.ok ? await res.text() : undefined;
  } catch {
    return undefined;
  }
}

/** The replicas that say they lead now (arus_control_leader 1), by id. */
export async function leaders(replicas: Replica[]): Promise<string[]> {
  const says = await Promise.all(replicas.map(async (r) => ({ r, m: await replicaMetrics(r) })));
  return says.filter((x) => x.m !== undefined && metric(x.m, 'arus_control_leader') === 1).map((x) => x.r.id);
}

/** Waits until exactly one replica (other than `not`) says it leads; that one. */
export async function oneLeader(replicas: Replica[], o: { not?: string; timeoutMs?: number; intervalMs?: number } = {}): Promise<Replica> {
  const [id] = await until(() => leaders(replicas), (l) => l.length === 1 && l[0] !== o.not, o.timeoutMs ?? 20_000, o.intervalMs ?? 50);
  return replicas.find((r) => r.id === id)!;
}

/** The A records a DNS node answers for `name` to Indonesia's clients (ECS 36.66.0.0/24), sorted; dig runs beside the event loop. */
export async function indonesia(node: DnsNode, name = 'api.gslb.example.com'): Promise<string[]> {
  const r = await digAsync('127.0.0.1', node.run.dnsPort, [name, 'A', '+subnet=36.66.0.0/24']);
  return r.answers
    .filter((a) => a.type === 'A')
    .map((a) => a.data)
    .sort();
}

/** Both (every) DNS nodes' answers for Indonesia, each joined: `['a,b', 'a,b']`. */
export const everyNode = (dns: DnsNode[], name?: string) => Promise.all(dns.map(async (n) => (await indonesia(n, name)).join()));

/** The snapshot version a DNS node answers from (its arus_snapshot_version). */
export const nodeVersion = async (n: DnsNode) => metric(await n.metrics(), 'arus_snapshot_version');

/** The version of the snapshot a replica serves now (GET /v1/snapshots/current). */
export async function servedVersion(r: Replica): Promise<number> {
  return ((await (await api(r, '/v1/snapshots/current')).json()) as { version: number }).version;
}

/** An etcd3 client of the lab's cluster (its TLS files), for the test's own reads: the caller closes it. */
export const etcdClient = (etcd: EtcdCluster): Etcd3 => createEtcdClient({ endpoints: etcd.endpoints, ca: etcd.ca, cert: etcd.clientCert, key: etcd.clientKey }, silentLogger());

/** etcd's current revision. */
export async function etcdRevision(client: Etcd3): Promise<number> {
  return Number((await client.get('/arus/config/version').exec()).header.revision);
}

/** Every put of `key` since `fromRevision`, from etcd's own history (a watch that replays it), oldest first. */
export async function putsSince(client: Etcd3, key: string, fromRevision: number): Promise<{ revision: number; createRevision: number; value: string }[]> {
  const upTo = await etcdRevision(client);
  const seen: { revision: number; createRevision: number; value: string }[] = [];
  const w = await client.watch().key(key).startRevision(String(fromRevision)).create();
  w.on('put', (kv) => seen.push({ revision: Number(kv.mod_revision), createRevision: Number(kv.create_revision), value: kv.value.toString() }));
  // A watch from a past revision sends that history within etcd's sync period (100 ms); a put past `upTo` ends it sooner.
  const end = Date.now() + 1500;
  await until(() => seen.at(-1)?.revision ?? 0, (r) => r > upTo || Date.now() > end, 10_000, 20).finally(() => w.cancel());
  return seen.filter((p) => p.revision <= upTo);
}

/** Waits until every running replica has applied at least etcd's revision now. */
export async function caughtUp(lab: Lab, client: Etcd3): Promise<number> {
  const target = await etcdRevision(client);
  await until(
    () => Promise.all(lab.replicas.filter((r) => r.run).map(async (r) => metric((await replicaMetrics(r)) ?? '', 'arus_control_applied_revision'))),
    (applied) => applied.every((a) => a >= target),
    15_000,
  );
  return target;
}

async function tokenFor(etcdArgs: string[], flags: string[]): Promise<string> {
  const r = await arusAsync(['token', 'create', ...flags, ...etcdArgs]);
  const token = /arus_\S+/.exec(r.stdout)?.[0];
  if (r.code !== 0 || !token) throw new Error(`arus token create ${flags.join(' ')} --etcd …: exited ${r.code}\n${r.stdout}${r.stderr}`);
  return token;
}

function replicaOf(dir: string, i: number, port: number, etcdArgs: string[], regions: string, leaseTtlS: number | undefined, update?: { port: number; kek: string }, env: Record<string, string> = {}): Replica {
  const id = `control-${i}`;
  /** What the processes before this one printed. */
  const past: Record<string, unknown>[] = [];
  const r: Replica = {
    id,
    url: `http://127.0.0.1:${port}`,
    db: join(dir, `${id}.db`),
    updatePort: update?.port,
    run: undefined,
    logs: () => [...past, ...(r.run?.logs ?? [])],
    async start() {
      const args = ['control', ...etcdArgs, '--db', r.db, '--replica-id', id, '--api-listen', `127.0.0.1:${port}`, '--regions', regions, ...(leaseTtlS ? ['--lease-ttl', String(leaseTtlS)] : [])];
      if (update) args.push('--update-listen', `127.0.0.1:${update.port}`);
      r.run = await startArus(args, { env: { ARUS_ADMIN_TOKEN: ADMIN, ...env, ...(update && { ARUS_TSIG_KEY: update.kek }) }, timeoutMs: 30_000 });
    },
    async kill9() {
      const p = r.run?.proc;
      // What it printed before its kill -9 stays readable.
      past.push(...(r.run?.logs ?? []));
      r.run = undefined;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((res) => p.once('exit', res));
      p.kill('SIGKILL');
      await exited;
    },
    pause: () => void r.run?.proc.kill('SIGSTOP'),
    resume: () => void r.run?.proc.kill('SIGCONT'),
    pid: () => r.run?.proc.pid,
  };
  return r;
}

/** Starts etcd, three replicas (the first seeds the cluster from the regions), and the roles asked for. */
export async function startLab(o: LabOptions = {}): Promise<Lab> {
  const dir = tempDir('arus-replicated-');
  const etcd = await startEtcdCluster({ members: o.members ?? 3, tls: true });
  const lab: Lab = { dir, etcd, replicas: [], controlUrls: '', dns: [], probes: [], sims: new Map(), etcdArgs: [], stop: () => stopLab(lab) };
  try {
    lab.etcdArgs = ['--etcd', etcd.endpoints.join(','), '--etcd-ca', etcd.ca!, '--etcd-cert', etcd.clientCert!, '--etcd-key', etcd.clientKey!];
    if (o.probes) lab.sims = await startZoneSims();
    const regions = regionsWithChecks(dir, (zone) => (o.probes ? lab.sims.get(zone)!.port : undefined));
    if (o.zone) writeFileSync(join(regions, 'zone.yaml'), o.zone(readFileSync(join(regions, 'zone.yaml'), 'utf8')));
    const n = Array.from({ length: o.replicas ?? 3 }, (_, i) => i);
    const ports = await Promise.all(n.map(() => freePort()));
    const updatePorts = o.updates ? await Promise.all(n.map(() => freePort())) : [];
    lab.replicas = ports.map((p, i) => replicaOf(dir, i, p, lab.etcdArgs, regions, o.leaseTtlS, o.updates && { port: updatePorts[i], kek: o.updates.kek }, o.env));
    lab.controlUrls = lab.replicas.map((r) => r.url).join(',');
    // The first seeds the empty cluster; the others find it seeded.
    await lab.replicas[0].start();
    await Promise.all(lab.replicas.slice(1).map((r) => r.start()));
    const dnsNames = Array.from({ length: o.dns ?? 0 }, (_, i) => `dns-${i}`);
    const agents = o.probes ? REGION_IDS.map((region) => ({ region, agent: `${region}-1` })) : [];
    const [dnsTokens, probeTokens] = await Promise.all([
      Promise.all(dnsNames.map((node) => tokenFor(lab.etcdArgs, ['--role', 'dns', '--node', node]))),
      Promise.all(agents.map((a) => tokenFor(lab.etcdArgs, ['--role', 'probe', '--agent', a.agent, '--region', a.region]))),
    ]);
    lab.probes = await Promise.all(probeTokens.map((token) => startArus(['probe', '--control', lab.controlUrls, '--token', token, '--health-listen', 'off'], { timeoutMs: 30_000 })));
    lab.dns = await Promise.all(
      dnsNames.map(async (name, i) => {
        // Every other node lists the replicas the other way round: a lost replica is then some node's and not another's.
        const urls = i % 2 ? lab.replicas.map((r) => r.url).reverse().join(',') : lab.controlUrls;
        const run = await startArus(['dns', '--control', urls, '--token', dnsTokens[i], '--snapshot', join(dir, name, 'snapshot.json'), '--dns-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'], { timeoutMs: 30_000 });
        const url = run.logs.find((l) => l.msg === 'ready')!.metrics as string;
        return { name, run, metrics: async () => (await fetch(url, { signal: AbortSignal.timeout(2000) })).text() };
      }),
    );
  } catch (err) {
    await stopLab(lab);
    throw err;
  }
  return lab;
}

async function stopLab(lab: Lab): Promise<void> {
  for (const r of lab.replicas) r.resume();
  await Promise.all([...lab.dns.map((n) => n.run.stop()), ...lab.probes.map((p) => p.stop())]);
  await Promise.all(lab.replicas.map((r) => r.kill9()));
  await Promise.all([...lab.sims.values()].map((s) => s.stop()));
  await lab.etcd.stop();
}
