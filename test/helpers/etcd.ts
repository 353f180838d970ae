// A real etcd cluster for the tests: N members of Debian's etcd-server
// (/usr/bin/etcd) as child processes on loopback, each with its own data dir
// and free client and peer ports, set up as etcd's security guide does it:
// client TLS with client-certificate auth, and peer TLS with peer
// client-certificate auth, every certificate signed by one test CA.
import 'reflect-metadata'; // before @peculiar/x509, as src/tls/certs.ts does
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, webcrypto } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { createAuthority, issue, type Authority, type Pem } from '../../src/tls/certs.js';
import { freePort, stopProcess, tempDir } from './arus.js';

const which = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim() || undefined;
const ETCD = ['/usr/bin/etcd', which('etcd')].find((p) => p && spawnSync(p, ['--version']).status === 0);
const ETCDCTL = ['/usr/bin/etcdctl', which('etcdctl')].find((p) => p && spawnSync(p, ['version']).status === 0);

/** Why the etcd tests cannot run here, or undefined when they can. */
export const etcdMissing: string | undefined =
  ETCD && ETCDCTL ? undefined : `needs ${[!ETCD && 'etcd', !ETCDCTL && 'etcdctl'].filter(Boolean).join(' and ')} (Debian: apt-get install -y etcd-server etcd-client)`;

/** What a client needs to reach the cluster: the shape `createEtcdClient` takes. */
export type EtcdClientFiles = { endpoints: string[]; ca?: string; cert?: string; key?: string };

export type EtcdMember = {
  name: string;
  /** https://127.0.0.1:port (http:// without TLS). */
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  /** The running process; undefined while stopped. */
  proc: ChildProcess | undefined;
  /** The last 16 KB of its log (etcd logs to stderr), across restarts. */
  stderr(): string;
  /** Signals it (SIGTERM) and waits for it to exit; SIGKILL after 3 s. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  kill9(): Promise<void>;
  /** Starts it again on its data dir and ports; resolves when it answers a status call (it may have no leader yet). */
  start(): Promise<void>;
  /** SIGSTOP / SIGCONT. */
  pause(): void;
  resume(): void;
};

export type EtcdCluster = EtcdClientFiles & {
  endpoints: string[];
  /** The CA that signed every certificate (trusted by members and clients); issue more from it. */
  authority?: Authority;
  /** PEM files: the CA, and a client certificate with its key (undefined without TLS). */
  ca?: string;
  clientCert?: string;
  clientKey?: string;
  dir: string;
  members: EtcdMember[];
  /** Resolves when every running member reports the same leader and the cluster answers a linearizable read. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** The name of the running member that every running member names as leader, or undefined. */
  leader(): Promise<string | undefined>;
  /** The running member whose id (a response header's member_id, in decimal) is `id`. */
  memberById(id: string): Promise<EtcdMember | undefined>;
  /** Runs etcdctl against `endpoints` (default: all) with the cluster's TLS files. */
  ctl(args: string[], endpoints?: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Kills every member and removes the directory. */
  stop(): Promise<void>;
};

const STDERR_KEEP = 16_000;
const tail = (s: string, lines = 15) => s.trimEnd().split('\n').slice(-lines).join('\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * etcd's peer certificate serves the peer port and dials the other members, and etcd 3.4 has no
 * separate peer client certificate: it needs both the TLS server and client usages, which
 * `issue()` in src/tls/certs.ts (one usage a certificate) cannot give.
 */
async function issueMember(ca: Authority, name: string): Promise<Pem> {
  const one = await issue(ca, { name, hosts: ['127.0.0.1', 'localhost'], usage: 'server' });
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const template = new x509.X509Certificate(one.cert);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '7'),
    subject: template.subject,
    issuer: ca.certificate.subject,
    notBefore: template.notBefore,
    notAfter: template.notAfter,
    signingKey: ca.keys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: alg,
    extensions: [
      ...template.extensions.filter((e) => e.type !== '2.5.29.37' && e.type !== '2.5.29.14'),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return { cert: cert.toString('pem') + '\n', key: `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/(.{64})/g, '$1\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n` };
}

function writePem(dir: string, base: string, pem: Pem): { cert: string; key: string } {
  const cert = join(dir, `${base}.crt`);
  const key = join(dir, `${base}.key`);
  writeFileSync(cert, pem.cert);
  writeFileSync(key, pem.key, { mode: 0o600 });
  return { cert, key };
}

type Spec = { name: string; clientPort: number; peerPort: number; dataDir: string; files?: { cert: string; key: string } };

function memberArgs(s: Spec, all: Spec[], scheme: string, token: string, ca?: string): string[] {
  const url = (port: number) => `${scheme}://127.0.0.1:${port}`;
  const tls = s.files && ca
    ? ['--client-cert-auth', '--trusted-ca-file', ca, '--cert-file', s.files.cert, '--key-file', s.files.key,
       '--peer-client-cert-auth', '--peer-trusted-ca-file', ca, '--peer-cert-file', s.files.cert, '--peer-key-file', s.files.key]
    : [];
  return [
    '--name', s.name, '--data-dir', s.dataDir,
    '--listen-client-urls', url(s.clientPort), '--advertise-client-urls', url(s.clientPort),
    '--listen-peer-urls', url(s.peerPort), '--initial-advertise-peer-urls', url(s.peerPort),
    '--initial-cluster', all.map((m) => `${m.name}=${url(m.peerPort)}`).join(','),
    '--initial-cluster-state', 'new', '--initial-cluster-token', token,
    // etcd's defaults, said out loud: the tests' timings (a new leader within a lease TTL) rest on them.
    '--heartbeat-interval', '100', '--election-timeout', '1000',
    '--logger', 'zap', '--log-outputs', 'stderr',
    ...tls,
  ];
}

/** Every etcd this test process started, killed if it exits without stopping them (a crashed test must not leave members behind). */
const alive = new Set<ChildProcess>();
process.once('exit', () => alive.forEach((p) => p.kill('SIGKILL')));

function createMember(s: Spec, args: string[], scheme: string, ctl: EtcdCluster['ctl']): EtcdMember {
  let log = '';
  const m: EtcdMember = {
    name: s.name,
    clientUrl: `${scheme}://127.0.0.1:${s.clientPort}`,
    peerUrl: `${scheme}://127.0.0.1:${s.peerPort}`,
    dataDir: s.dataDir,
    proc: undefined,
    stderr: () => log,
    async stop(signal = 'SIGTERM') {
      const p = m.proc;
      if (!p) return;
      p.kill('SIGCONT'); // a paused member cannot act on SIGTERM
      await stopProcess(p, signal);
    },
    kill9: () => m.stop('SIGKILL'),
    async start() {
      if (m.proc) throw new Error(`${s.name} is already running (pid ${m.proc.pid})`);
      const p = spawn(ETCD!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      m.proc = p;
      alive.add(p);
      p.stderr.on('data', (d) => (log = (log + d).slice(-STDERR_KEEP)));
      p.once('exit', () => {
        alive.delete(p);
        if (m.proc === p) m.proc = undefined;
      });
      let exited: (() => void) | undefined;
      const exit = new Promise<never>((_, reject) => {
        exited = () => reject(new Error(`etcd member ${s.name} exited while starting (${p.exitCode ?? p.signalCode})\n${tail(log)}`));
        p.once('exit', exited);
      });
      const answers = waitFor(
        async () => m.proc !== p || (await ctl(['endpoint', 'status', '--dial-timeout=2s', '--command-timeout=2s'], [m.clientUrl])).code === 0,
        30_000,
        () => `etcd member ${s.name} did not answer on ${m.clientUrl} in 30 s\n${tail(log)}`,
      );
      try {
        await Promise.race([answers, exit]);
      } finally {
        p.off('exit', exited!);
      }
    },
    pause: () => void m.proc?.kill('SIGSTOP'),
    resume: () => void m.proc?.kill('SIGCONT'),
  };
  return m;
}

async function waitFor(ok: () => Promise<boolean>, timeoutMs: number, describe: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(describe());
    await sleep(200);
  }
}

type Status = { Endpoint: string; Status: { header: { member_id: string }; leader: string } };

type ClusterOptions = { members?: number; tls?: boolean; timeoutMs?: number };

/**
 * Starts an etcd cluster of `members` (default 3) and resolves once it has a leader and answers.
 * With `tls` (the default) every URL is https and clients must present a certificate signed by the CA.
 */
export async function startEtcdCluster(o: ClusterOptions = {}): Promise<EtcdCluster> {
  if (etcdMissing) throw new Error(`startEtcdCluster: ${etcdMissing}`);
  try {
    return await launch(o);
  } catch (err) {
    // A port freePort() found free was taken by someone else before etcd bound it: once more, on new ports.
    if (!(err as Error).message.includes('address already in use')) throw err;
    return launch(o);
  }
}

async function launch(o: ClusterOptions): Promise<EtcdCluster> {
  const n = o.members ?? 3;
  const useTls = o.tls ?? true;
  const scheme = useTls ? 'https' : 'http';
  const dir = tempDir('arus-etcd-');
  const authority = useTls ? await createAuthority({ name: 'Arus etcd test CA' }) : undefined;
  const ca = authority ? join(dir, 'ca.crt') : undefined;
  if (authority && ca) writeFileSync(ca, authority.cert);
  const client = authority ? writePem(dir, 'client', await issue(authority, { name: 'arus-control', usage: 'client' })) : undefined;
  const specs: Spec[] = [];
  for (let i = 0; i < n; i++) {
    const name = `etcd-${i}`;
    const files = authority ? writePem(dir, name, await issueMember(authority, name)) : undefined;
    specs.push({ name, clientPort: await freePort(), peerPort: await freePort(), dataDir: join(dir, name), files });
  }
  const tlsArgs = ca && client ? ['--cacert', ca, '--cert', client.cert, '--key', client.key] : [];
  const endpoints = specs.map((s) => `${scheme}://127.0.0.1:${s.clientPort}`);
  const ctl: EtcdCluster['ctl'] = (args, eps = endpoints) =>
    new Promise((resolve) => {
      execFile(ETCDCTL!, [`--endpoints=${eps.join(',')}`, ...tlsArgs, ...args], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 15_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
    });
  const token = `arus-${randomBytes(6).toString('hex')}`;
  const members = specs.map((s) => createMember(s, memberArgs(s, specs, scheme, token, ca), scheme, ctl));

  const statusOf = async (up: EtcdMember[]): Promise<Status[]> => {
    const r = await ctl(['endpoint', 'status', '--write-out=json', '--command-timeout=2s'], up.map((m) => m.clientUrl));
    try {
      // Member ids are 64-bit: read them as strings, not as doubles.
      return JSON.parse(r.stdout.replace(/"(member_id|leader|cluster_id)":(\d+)/g, '"$1":"$2"')) as Status[];
    } catch {
      return [];
    }
  };
  const memberById = async (id: string) => {
    const at = (await statusOf(members.filter((m) => m.proc))).find((s) => s.Status.header.member_id === id);
    return members.find((m) => m.clientUrl === at?.Endpoint);
  };
  const leader = async (): Promise<string | undefined> => {
    const up = members.filter((m) => m.proc);
    const statuses = await statusOf(up);
    const leaders = new Set(statuses.map((s) => s.Status.leader));
    if (statuses.length !== up.length || leaders.size !== 1 || leaders.has('0')) return undefined;
    // Right after a leader dies the others still name it for up to an election timeout: no leader then.
    const at = statuses.find((s) => s.Status.header.member_id === [...leaders][0]);
    return at && members.find((m) => m.clientUrl === at.Endpoint)?.name;
  };
  const waitHealthy = (timeoutMs = 30_000) =>
    waitFor(
      async () => (await leader()) !== undefined && (await ctl(['endpoint', 'health', '--command-timeout=3s'], members.filter((m) => m.proc).map((m) => m.clientUrl))).code === 0,
      timeoutMs,
      () => `etcd cluster not healthy in ${timeoutMs} ms:\n${members.map((m) => `--- ${m.name} (${m.proc ? `pid ${m.proc.pid}` : 'stopped'})\n${tail(m.stderr(), 8)}`).join('\n')}`,
    );
  const stop = async () => {
    // The data goes with them: no graceful shutdown (a leader's SIGTERM waits to hand over its role).
    await Promise.all(members.map((m) => m.kill9()));
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    // Every member at once: each waits for the others to form the first quorum.
    await Promise.all(members.map((m) => m.start()));
    await waitHealthy(o.timeoutMs ?? 60_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { endpoints, authority, ca, clientCert: client?.cert, clientKey: client?.key, cert: client?.cert, key: client?.key, dir, members, waitHealthy, leader, memberById, ctl, stop };
}
