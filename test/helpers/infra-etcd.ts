// Checkers for the replicated control plane in infra/: the etcd members
// (their flags against the real `etcd --help`, TLS as etcd's security guide
// sets it up, one cluster), the control replicas on them (every member in
// --etcd, etcd's own CA, ids and URLs of their own), the roles following
// every replica, and the Kubernetes shapes a quorum needs (parallel start,
// disruption budgets, a liveness that does not need a quorum). Like the
// checkers in infra.ts, each returns a list of problems. And the compose
// stack's certificates, etcd members and control replicas, replayed as real
// processes on loopback (no Docker).
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join, posix, resolve } from 'node:path';
import { arus, freePort, launchArus, stopProcess, tempDir, type Launched } from './arus.js';
import { composeCaOf, composeCertsRuns, composeEnv, composeProvides, covers, k8sRuns, type CertInfo, type Provided, type RoleRun } from './infra-tls.js';
import { arusCommand, flagValue, podsOf, urlList, workloads, type Obj } from './infra.js';

/** One etcd member as a setup runs it: its flags (`name` → value; `true` for a bare boolean flag). */
export type EtcdRun = {
  source: string;
  flags: Map<string, string>;
  provides(path: string): Provided;
  caOf?(path: string): string | undefined;
  /** The volume (or claim) and path its --data-dir is on, when the setup says. */
  dataOn?: string;
};

/** The metrics only a replica of the replicated control plane registers (src/control/replica.ts): gauges without labels. */
export const REPLICA_METRICS = ['arus_control_leader', 'arus_control_applied_revision', 'arus_etcd_reachable', 'arus_control_fenced_writes'];

const which = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim() || undefined;
/** The local etcd and etcdctl (Debian's etcd-server and etcd-client), if any. */
export const ETCD_BIN = ['/usr/bin/etcd', which('etcd')].find((p) => p && spawnSync(p, ['--version']).status === 0);
export const ETCDCTL_BIN = ['/usr/bin/etcdctl', which('etcdctl')].find((p) => p && spawnSync(p, ['version']).status === 0);

/** The flags the real `etcd --help` lists, or undefined without etcd here. */
export function etcdHelpFlags(): Set<string> | undefined {
  if (!ETCD_BIN) return undefined;
  const r = spawnSync(ETCD_BIN, ['--help'], { encoding: 'utf8' });
  return new Set([...`${r.stdout}${r.stderr}`.matchAll(/^\s+--([a-z0-9-]+)/gm)].map((m) => m[1]));
}

/** etcd's command line as flags: `--a=b`, `--a b`, and `--a` alone (a boolean) for true. */
export function parseEtcdArgs(argv: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) continue;
    if (m[2] !== undefined) flags.set(m[1], m[2]);
    else if (argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) flags.set(m[1], argv[++i]);
    else flags.set(m[1], 'true');
  }
  return flags;
}

/** The flags an environment file sets (`ETCD_CLIENT_CERT_AUTH=true` is --client-cert-auth), as etcd reads its environment. */
export function etcdEnvFlags(text: string): Map<string, string> {
  const flags = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^ETCD_([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) flags.set(m[1].toLowerCase().replaceAll('_', '-'), m[2].replace(/^"(.*)"$/, '$1'));
  }
  return flags;
}

/** The etcd command line of a container or compose service: its image is etcd's, its command etcd (the binary itself left out). */
export function etcdArgv(c: Obj): string[] | undefined {
  if (!/(^|\/)etcd(:|@|$)/.test(String(c.image ?? ''))) return undefined;
  const cmd: string[] = [...[c.command ?? []].flat(), ...(c.args ?? [])].map(String);
  return cmd[0]?.endsWith('etcd') ? cmd.slice(1) : cmd;
}

/** The etcd members of Kubernetes objects, one per StatefulSet pod, `$(POD_NAME)` expanded. */
export function k8sEtcdRuns(objects: Obj[], generated?: Map<string, Set<string>>): EtcdRun[] {
  return k8sRuns(objects, generated, { argv: etcdArgv }).map((r) => ({ source: r.source, flags: parseEtcdArgs(r.argv), provides: r.provides, caOf: r.caOf }));
}

const mountOf = (s: Obj, path: string) =>
  (s.volumes ?? [])
    .map((v: Obj | string) => (typeof v === 'string' ? { source: v.split(':')[0], target: v.split(':')[1] } : { source: String(v.source), target: String(v.target) }))
    .filter((m: { target: string }) => path === m.target || path.startsWith(`${m.target}/`))
    .sort((a: { target: string }, b: { target: string }) => b.target.length - a.target.length)[0] as { source: string; target: string } | undefined;

/** The etcd members of a compose file. */
export function composeEtcdRuns(doc: Obj): EtcdRun[] {
  return Object.entries<Obj>(doc.services ?? {}).flatMap(([name, s]) => {
    const argv = etcdArgv({ image: s.image, command: s.command });
    if (!argv) return [];
    const flags = parseEtcdArgs(argv);
    const dir = flags.get('data-dir') ?? '';
    const m = mountOf(s, dir);
    return [{ source: `compose service ${name}`, flags, provides: composeProvides(doc, s), caOf: composeCaOf(doc, s), dataOn: m ? `${m.source}:${posix.relative(m.target, dir)}` : undefined }];
  });
}

/** Flags etcd does not have. */
export function checkEtcdFlags(runs: EtcdRun[], known: Set<string>): string[] {
  return runs.flatMap((r) => [...r.flags.keys()].filter((f) => !known.has(f)).map((f) => `${r.source}: etcd has no flag --${f}`));
}

const described = (p: Provided): CertInfo | undefined => (typeof p === 'object' ? p : undefined);
const on = (v: string | undefined) => v === 'true';
const urlsOf = (v: string | undefined): URL[] => {
  try {
    return urlList(v ?? '');
  } catch {
    return [];
  }
};

/** `name=url,name=url` of --initial-cluster. */
function initialCluster(v: string | undefined): Map<string, string> {
  return new Map((v ?? '').split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

/**
 * One member over TLS, as etcd's security guide sets it up: clients with
 * certificates (--client-cert-auth), peers with certificates
 * (--peer-client-cert-auth), every URL https, every file provided, each
 * certificate naming the host it is dialled by and signed by the CA the
 * members trust, the peer certificate with both usages (etcd 3.4), and an
 * --initial-cluster of an odd number, three or more, with itself at its peer URL.
 */
export function checkEtcdMember(r: EtcdRun): string[] {
  const problems: string[] = [];
  const f = (k: string) => r.flags.get(k);
  if (!f('name')) problems.push(`${r.source}: no --name`);
  for (const [flag, what] of [['client-cert-auth', 'clients'], ['peer-client-cert-auth', 'peers']])
    if (!on(f(flag))) problems.push(`${r.source}: no --${flag}: ${what} would need no certificate`);
  for (const flag of ['auto-tls', 'peer-auto-tls']) if (on(f(flag))) problems.push(`${r.source}: --${flag}: self-signed certificates nobody can verify`);
  for (const flag of ['trusted-ca-file', 'cert-file', 'key-file', 'peer-trusted-ca-file', 'peer-cert-file', 'peer-key-file']) {
    const path = f(flag);
    if (!path) problems.push(`${r.source}: no --${flag}`);
    else if (r.provides(path) === false) problems.push(`${r.source}: --${flag} ${path} is not provided`);
  }
  for (const flag of ['listen-client-urls', 'advertise-client-urls', 'listen-peer-urls', 'initial-advertise-peer-urls']) {
    if (!f(flag)) problems.push(`${r.source}: no --${flag}`);
    for (const u of urlsOf(f(flag))) if (u.protocol !== 'https:') problems.push(`${r.source}: --${flag} ${u.origin} is not https://`);
  }
  const serving = described(r.provides(f('cert-file') ?? ''));
  const peer = described(r.provides(f('peer-cert-file') ?? ''));
  if (serving && !serving.usages.includes('server auth')) problems.push(`${r.source}: --cert-file (${serving.from}) is not for server auth`);
  if (peer && !(peer.usages.includes('server auth') && peer.usages.includes('client auth')))
    problems.push(`${r.source}: --peer-cert-file (${peer.from}) needs both the server and the client usage: etcd 3.4 dials its peers with it`);
  for (const [cert, flag] of [[serving, 'advertise-client-urls'], [peer, 'initial-advertise-peer-urls']] as const)
    for (const u of urlsOf(f(flag))) if (cert && !covers(cert, u.hostname)) problems.push(`${r.source}: --${flag} ${u.origin}: its certificate (${cert.from}) does not name ${u.hostname}`);
  for (const [cert, ca] of [[serving, 'trusted-ca-file'], [peer, 'peer-trusted-ca-file']] as const) {
    const trusted = r.caOf?.(f(ca) ?? '');
    if (cert?.issuer && trusted && cert.issuer !== trusted) problems.push(`${r.source}: its certificate (${cert.from}) is signed by ${cert.issuer}, but the members trust ${trusted} (--${ca})`);
  }
  const cluster = initialCluster(f('initial-cluster'));
  if (cluster.size < 3 || cluster.size % 2 === 0) problems.push(`${r.source}: --initial-cluster has ${cluster.size} member(s): a quorum that survives losing one needs an odd number, three or more`);
  const name = f('name') ?? '';
  if (!cluster.has(name)) problems.push(`${r.source}: --initial-cluster leaves out ${name || 'this member'}`);
  else if (cluster.get(name) !== f('initial-advertise-peer-urls')) problems.push(`${r.source}: --initial-cluster has ${name} at ${cluster.get(name)}, but it advertises ${f('initial-advertise-peer-urls')}`);
  return problems;
}

/** The members of one setup: each as above, names and data directories of their own, and one --initial-cluster naming exactly them. */
export function checkEtcdMembers(runs: EtcdRun[]): string[] {
  const problems = runs.flatMap(checkEtcdMember);
  if (runs.length < 3 || runs.length % 2 === 0) problems.push(`etcd: ${runs.length} member(s): a quorum that survives losing one needs an odd number, three or more`);
  const names = new Map<string, string>();
  const data = new Map<string, string>();
  for (const r of runs) {
    const name = r.flags.get('name');
    if (name && names.has(name)) problems.push(`${r.source}: --name ${name} is also ${names.get(name)}'s`);
    else if (name) names.set(name, r.source);
    if (r.dataOn && data.has(r.dataOn)) problems.push(`${r.source}: --data-dir ${r.flags.get('data-dir')} (${r.dataOn}) is also ${data.get(r.dataOn)}'s: two members on one data directory`);
    else if (r.dataOn) data.set(r.dataOn, r.source);
  }
  const clusters = new Set(runs.map((r) => r.flags.get('initial-cluster') ?? ''));
  if (clusters.size > 1) problems.push(`etcd: the members disagree on --initial-cluster (${[...clusters].join(' | ')})`);
  for (const r of runs) for (const n of initialCluster(r.flags.get('initial-cluster')).keys()) if (!names.has(n)) problems.push(`${r.source}: --initial-cluster names ${n}, which no member is`);
  return problems;
}

const option = (run: RoleRun, flag: string, envName: string) => flagValue(run.argv, flag) ?? run.env[envName];
const origins = (v: string | undefined) => new Set(urlsOf(v).map((u) => u.origin));
const list = (s: Iterable<string>) => [...s].sort().join(', ');

/**
 * The control replicas on those members: three or more, each with every
 * member's client URL in --etcd, etcd's CA and a client certificate etcd's CA
 * signed, never the CA of the roles' identities; ids and advertised URLs of
 * their own, each named by control's certificate; and every role's --control
 * listing every replica.
 */
export function checkReplicas(runs: RoleRun[], members: EtcdRun[]): string[] {
  const problems: string[] = [];
  const replicas = runs.filter((r) => r.argv[0] === 'control');
  const replicated = replicas.filter((r) => option(r, '--etcd', 'ARUS_ETCD'));
  if (replicated.length < 3) problems.push(`control: ${replicated.length} replica(s) with --etcd: the replicated control plane runs three or more`);
  const memberUrls = new Set(members.flatMap((m) => [...origins(m.flags.get('advertise-client-urls'))]));
  const memberCas = new Set(members.map((m) => m.caOf?.(m.flags.get('trusted-ca-file') ?? '')).filter(Boolean));
  const memberIssuers = new Set(members.map((m) => described(m.provides(m.flags.get('cert-file') ?? ''))?.issuer).filter(Boolean));
  const ids = new Map<string, string>();
  const urls = new Map<string, string>();
  for (const r of replicas) {
    const etcd = option(r, '--etcd', 'ARUS_ETCD');
    if (!etcd) {
      problems.push(`${r.source}: control without --etcd beside replicas on etcd: it would be a second, separate control plane`);
      continue;
    }
    const listed = origins(etcd);
    const missing = [...memberUrls].filter((u) => !listed.has(u));
    const unknown = [...listed].filter((u) => !memberUrls.has(u));
    if (missing.length) problems.push(`${r.source}: --etcd leaves out ${missing.join(', ')}: every member's client URL, so that losing one loses nothing`);
    if (unknown.length) problems.push(`${r.source}: --etcd ${unknown.join(', ')} is no member's --advertise-client-urls`);
    for (const [flag, env] of [['--etcd-ca', 'ARUS_ETCD_CA'], ['--etcd-cert', 'ARUS_ETCD_CERT'], ['--etcd-key', 'ARUS_ETCD_KEY']]) {
      const path = option(r, flag, env);
      if (!path) problems.push(`${r.source}: no ${flag}: etcd requires a client certificate (--client-cert-auth)`);
      else if (r.provides(path) === false) problems.push(`${r.source}: ${flag} ${path} is not provided`);
    }
    const cert = described(r.provides(option(r, '--etcd-cert', 'ARUS_ETCD_CERT') ?? ''));
    if (cert && !cert.usages.includes('client auth')) problems.push(`${r.source}: --etcd-cert (${cert.from}) is not for client auth`);
    if (cert?.issuer && memberCas.size && !memberCas.has(cert.issuer)) problems.push(`${r.source}: --etcd-cert (${cert.from}) is signed by ${cert.issuer}, which the members do not trust (${list(memberCas as Set<string>)})`);
    const ca = r.caOf?.(option(r, '--etcd-ca', 'ARUS_ETCD_CA') ?? '');
    if (ca && memberIssuers.size && !memberIssuers.has(ca)) problems.push(`${r.source}: --etcd-ca is ${ca}, which did not sign the members' certificates (${list(memberIssuers as Set<string>)})`);
    const rolesCa = r.caOf?.(option(r, '--tls-client-ca', 'ARUS_TLS_CLIENT_CA') ?? '');
    if (rolesCa && memberCas.has(rolesCa))
      problems.push(`${r.source}: etcd trusts ${rolesCa}, the CA of the roles' identities (--tls-client-ca): any probe agent's or balancer's certificate could read and write etcd; give etcd a CA of its own`);
    const id = flagValue(r.argv, '--replica-id') ?? r.env.ARUS_REPLICA_ID;
    if (!id) problems.push(`${r.source}: no --replica-id`);
    else if (ids.has(id)) problems.push(`${r.source}: --replica-id ${id} is also ${ids.get(id)}'s`);
    else ids.set(id, r.source);
    const adv = flagValue(r.argv, '--advertise-url') ?? r.env.ARUS_ADVERTISE_URL;
    if (!adv) problems.push(`${r.source}: no --advertise-url: the other roles would be told its listen address`);
    else {
      const u = urlsOf(adv)[0];
      if (!u) problems.push(`${r.source}: --advertise-url ${adv} is not a URL`);
      else {
        if (urls.has(u.origin)) problems.push(`${r.source}: --advertise-url ${u.origin} is also ${urls.get(u.origin)}'s`);
        urls.set(u.origin, r.source);
        const served = described(r.provides(option(r, '--tls-cert', 'ARUS_TLS_CERT') ?? ''));
        if (served && !covers(served, u.hostname)) problems.push(`${r.source}: --advertise-url ${u.origin}: its certificate (${served.from}) does not name ${u.hostname}`);
      }
    }
  }
  for (const r of runs.filter((x) => ['dns', 'probe', 'balancer'].includes(x.argv[0]))) {
    const listed = origins(flagValue(r.argv, '--control'));
    const missing = [...urls.keys()].filter((u) => !listed.has(u));
    if (missing.length) problems.push(`${r.source}: --control leaves out ${missing.join(', ')}: a role must know every replica (a probe agent reports to each, a DNS node moves among them)`);
    for (const u of listed) if (urls.size && !urls.has(u)) problems.push(`${r.source}: --control ${u} is no replica's --advertise-url`);
  }
  return problems;
}

const selects = (selector: Obj | undefined, labels: Obj) => !!selector && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

/**
 * What a quorum needs on Kubernetes: etcd's members start together (their
 * readiness needs each other) and find each other by name before they are
 * ready; a liveness probe that needs no quorum (or losing it restarts them
 * all); and disruption budgets that keep a quorum of etcd and two replicas of
 * control through a drain, while still letting one pod go.
 */
export function checkQuorumShapes(objects: Obj[]): string[] {
  const problems: string[] = [];
  const component = (w: { labels: Obj }) => w.labels['app.kubernetes.io/component'];
  const sets = workloads(objects).filter((w) => w.obj.kind === 'StatefulSet' && ['etcd', 'control'].includes(component(w)));
  if (!sets.some((w) => component(w) === 'etcd')) problems.push('Kubernetes: no etcd StatefulSet');
  for (const w of sets) {
    const n = Number(w.obj.spec?.replicas ?? 1);
    if (component(w) === 'etcd') {
      const c = (w.pod.containers ?? []).find((x: Obj) => etcdArgv(x));
      if (w.obj.spec?.podManagementPolicy !== 'Parallel' && c?.readinessProbe)
        problems.push(`${w.where}: podManagementPolicy must be Parallel: pod 0 would wait for a readiness that needs pods 1 and 2`);
      const svc = objects.find((o) => o.kind === 'Service' && o.metadata?.name === w.obj.spec?.serviceName);
      if (svc && svc.spec?.publishNotReadyAddresses !== true) problems.push(`Service/${svc.metadata.name}: publishNotReadyAddresses: true, or the members cannot resolve each other before a quorum makes them ready`);
      const live = JSON.stringify(c?.livenessProbe ?? {});
      if (/endpoint","health"|"\/health"|endpoint health/.test(live)) problems.push(`${w.where}: the liveness probe needs a quorum: losing it would restart every member`);
    }
    const pdbs = objects.filter((o) => o.kind === 'PodDisruptionBudget' && podsOf(w).some((p) => selects(o.spec?.selector?.matchLabels, p.labels)));
    if (!pdbs.length) {
      problems.push(`${w.where}: no PodDisruptionBudget: a node drain could take ${component(w) === 'etcd' ? 'the quorum' : 'every replica'} at once`);
      continue;
    }
    const need = component(w) === 'etcd' ? Math.floor(n / 2) + 1 : 2;
    for (const pdb of pdbs) {
      const where = `PodDisruptionBudget/${pdb.metadata?.name}`;
      const min = pdb.spec?.minAvailable !== undefined ? Number(pdb.spec.minAvailable) : n - Number(pdb.spec?.maxUnavailable ?? n);
      if (!(min >= need)) problems.push(`${where}: keeps ${min} of ${w.where}'s ${n} pods: ${component(w) === 'etcd' ? `a quorum is ${need}` : 'two replicas must stay'}`);
      if (min >= n) problems.push(`${where}: minAvailable ${min} of ${n} lets no pod go: every node drain would block`);
    }
  }
  return problems;
}

// ------------------------------------------------ the compose stack, replayed

export type Replayed = {
  dir: string;
  /** Where a compose service's container path is on this machine (its volume or bind mount, else the path itself). */
  hostPath(service: string, path: string): string;
  /** The loopback port a compose service's container port is replayed on. */
  portOf(service: string, port: number): number | undefined;
  /** Runs etcdctl against every member, presenting `client` (none: no certificate). */
  ctl(args: string[], client?: { cert: string; key: string }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** The Arus processes started, by compose service. */
  arus: Map<string, Launched>;
  stop(): Promise<void>;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs a compose stack's `arus certs init` steps, etcd members and the Arus
 * services named in `services`, as real processes on this machine, without
 * Docker: each service's command line as the file has it, with its hosts
 * (compose service names, 0.0.0.0) on 127.0.0.1, each container port on a
 * free loopback port of its own, and its volumes as folders. Resolves when
 * the members answer with a quorum and each Arus process is ready.
 */
export async function replayCompose(doc: Obj, composeDir: string, services: string[], o: { timeoutMs?: number } = {}): Promise<Replayed> {
  if (!ETCD_BIN || !ETCDCTL_BIN) throw new Error('replayCompose needs etcd and etcdctl (Debian: etcd-server, etcd-client)');
  try {
    return await replay(doc, composeDir, services, o);
  } catch (err) {
    // A port freePort() found free was taken before its process bound it: once more, on new ports.
    if (!/address already in use|EADDRINUSE/.test((err as Error).message)) throw err;
    return replay(doc, composeDir, services, o);
  }
}

async function replay(doc: Obj, composeDir: string, services: string[], o: { timeoutMs?: number }): Promise<Replayed> {
  if (!ETCD_BIN || !ETCDCTL_BIN) throw new Error('replayCompose needs etcd and etcdctl');
  const timeoutMs = o.timeoutMs ?? 60_000;
  const all: Obj = doc.services ?? {};
  const dir = tempDir('arus-replay-');
  const hostPath = (service: string, path: string) => {
    const m = mountOf(all[service] ?? {}, path);
    if (!m) return path;
    const rest = posix.relative(m.target, path);
    const base = m.source.startsWith('.') || m.source.startsWith('/') ? resolve(composeDir, m.source) : join(dir, 'volumes', m.source);
    mkdirSync(base, { recursive: true });
    return join(base, rest);
  };
  const ports = new Map<string, number>();
  const portOf = (service: string, port: number) => ports.get(`${service}:${port}`);
  const mapPort = async (service: string, port: number) => {
    const key = `${service}:${port}`;
    if (!ports.has(key)) ports.set(key, await freePort());
    return ports.get(key)!;
  };
  const rewriteUrl = async (self: string, raw: string) => {
    const u = new URL(raw);
    const target = u.hostname === '0.0.0.0' ? self : u.hostname in all ? u.hostname : undefined;
    if (!target) return raw;
    return `${u.protocol}//127.0.0.1:${await mapPort(target, Number(u.port))}${u.pathname === '/' && !raw.endsWith('/') ? '' : u.pathname}`;
  };
  const rewrite = async (self: string, argv: string[]) => {
    const out: string[] = [];
    for (const a of argv) {
      if (a.includes('://')) {
        const items: string[] = [];
        for (const item of a.split(',')) {
          const eq = item.indexOf('=');
          const [prefix, url] = eq > 0 && eq < item.indexOf('://') ? [item.slice(0, eq + 1), item.slice(eq + 1)] : ['', item];
          items.push(prefix + (await rewriteUrl(self, url)));
        }
        out.push(items.join(','));
      } else if (/^0\.0\.0\.0:\d+$/.test(a) || /^127\.0\.0\.1:\d+$/.test(a)) out.push(`127.0.0.1:${await mapPort(self, Number(a.split(':')[1]))}`);
      else if (a.startsWith('/')) out.push(hostPath(self, a));
      else out.push(a);
    }
    return out;
  };

  const members: { name: string; proc: ChildProcess; log: string }[] = [];
  const launched = new Map<string, Launched>();
  const stop = async () => {
    await Promise.all([...launched.values()].map((l) => l.stop()));
    await Promise.all(members.map((m) => stopProcess(m.proc, 'SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const r of composeCertsRuns(doc)) {
      const argv = r.argv.map((a, i, list) => (list[i - 1] === '--out' ? hostPath(r.service, a) : a));
      const made = arus(argv);
      if (made.code !== 0) throw new Error(`arus ${argv.join(' ')}: ${made.stderr}`);
    }
    const etcdServices = Object.keys(all).filter((n) => etcdArgv({ image: all[n].image, command: all[n].command }));
    const clientUrls: string[] = [];
    for (const name of etcdServices) {
      const args = await rewrite(name, etcdArgv({ image: all[name].image, command: all[name].command })!);
      clientUrls.push(parseEtcdArgs(args).get('advertise-client-urls') ?? '');
      const m = { name, proc: spawn(ETCD_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] }), log: '' };
      m.proc.stderr.on('data', (d) => (m.log = (m.log + d).slice(-8000)));
      members.push(m);
    }
    const ctl: Replayed['ctl'] = (args, client) =>
      new Promise((done) => {
        const ca = hostPath(etcdServices[0], parseEtcdArgs(etcdArgv(all[etcdServices[0]])!).get('trusted-ca-file')!);
        const tls = ['--cacert', ca, ...(client ? ['--cert', client.cert, '--key', client.key] : [])];
        execFile(ETCDCTL_BIN, [`--endpoints=${clientUrls.join(',')}`, ...tls, '--dial-timeout=2s', '--command-timeout=3s', ...args], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 15_000 }, (err, stdout, stderr) =>
          done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
        );
      });
    // The members' own certificate is a client one too (--peer): the health check's, as in the file.
    const first = parseEtcdArgs(etcdArgv(all[etcdServices[0]])!);
    const memberCert = { cert: hostPath(etcdServices[0], first.get('cert-file')!), key: hostPath(etcdServices[0], first.get('key-file')!) };
    const end = Date.now() + timeoutMs;
    while ((await ctl(['endpoint', 'health'], memberCert)).code !== 0) {
      const dead = members.find((m) => m.proc.exitCode !== null);
      if (dead || Date.now() > end) throw new Error(`etcd of the compose file: ${dead ? `${dead.name} exited` : `no quorum in ${timeoutMs} ms`}\n${members.map((m) => `--- ${m.name}\n${m.log.split('\n').slice(-6).join('\n')}`).join('\n')}`);
      await sleep(250);
    }
    for (const name of services) {
      const s = all[name];
      const env = Object.fromEntries(Object.entries(composeEnv(s)).filter(([k, v]) => v !== '' && !k.startsWith('HEALTHCHECK_')));
      const l = launchArus(await rewrite(name, arusCommand(s)!), { env });
      launched.set(name, l);
      while (!l.logs.some((x) => x.msg === 'ready')) {
        if (l.proc.exitCode !== null || Date.now() > end) throw new Error(`compose service ${name}: ${l.proc.exitCode !== null ? 'exited' : 'not ready'}\n${l.stderr()}\n${l.logs.slice(-5).map((x) => JSON.stringify(x)).join('\n')}`);
        await sleep(100);
      }
    }
    return { dir, hostPath, portOf, ctl, arus: launched, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Budgets that let no pod go: a minAvailable as large as what it selects blocks every node drain. */
export function checkBudgets(objects: Obj[]): string[] {
  const problems: string[] = [];
  for (const pdb of objects.filter((o) => o.kind === 'PodDisruptionBudget')) {
    const pods = workloads(objects).flatMap((w) => podsOf(w).filter((p) => selects(pdb.spec?.selector?.matchLabels, p.labels)).map(() => Number(w.obj.kind === 'StatefulSet' ? 1 : (w.obj.spec?.replicas ?? 1))));
    const n = pods.reduce((a, b) => a + b, 0);
    if (pdb.spec?.minAvailable !== undefined && Number(pdb.spec.minAvailable) >= n) problems.push(`PodDisruptionBudget/${pdb.metadata?.name}: minAvailable ${pdb.spec.minAvailable} of the ${n} pod(s) it selects lets none go: every node drain would block`);
  }
  return problems;
}
