// Checkers for how the deployment files in infra/ wire TLS: every link to
// control is https with a CA (and, under mutual TLS, a client certificate
// that names the right identity), every listener off loopback has a
// certificate, every certificate a path names is one the setup provides, and
// Prometheus scrapes over TLS. Like the checkers in infra.ts, each returns a
// list of problems, so a test can show it a broken copy.
import { isIP } from 'node:net';
import { posix } from 'node:path';
import type { Config } from '../../src/config/schema.js';
import type { Principal } from '../../src/db/tokens.js';
import { identityOf } from '../../src/tls/identity.js';
import { isLoopbackHost } from '../../src/tls/plaintext.js';
import {
  arusArgv,
  arusCommand,
  CERT_SECRET_KEYS,
  certificateSecrets,
  containerEnv,
  expandVars,
  flagValue,
  isArusService,
  parseUnit,
  podsOf,
  resolveUnit,
  workloads,
  type Obj,
} from './infra.js';

/**
 * What a setup says about a certificate file: the names in it, what it is for,
 * and the CA that signed it (`issuer`: an Issuer's name, or the folder
 * `arus certs init` wrote it to), when the setup says.
 */
export type CertInfo = { uris: string[]; dnsNames: string[]; ips: string[]; usages: string[]; from: string; issuer?: string };

/** How a path an Arus process names resolves in its setup: not there, there (contents unknown), or a certificate described. */
export type Provided = false | true | CertInfo;

/** One Arus process as a setup runs it. */
export type RoleRun = {
  source: string;
  argv: string[];
  env: Record<string, string>;
  provides(path: string): Provided;
  /** How many copies run with this very command line and credential (a Deployment's replicas). */
  replicas?: number;
  /** The CA a CA-bundle file (`--ca`, `--tls-client-ca`, `--etcd-ca`) is, named as `CertInfo.issuer` names it; undefined when unknown. */
  caOf?(path: string): string | undefined;
};

const ROLE_LISTENERS: Record<string, string[]> = { control: ['--api-listen'], up: ['--api-listen'], balancer: ['--listen'], dns: ['--metrics-listen'], probe: ['--health-listen'] };
const CLIENT_ROLES = new Set(['probe', 'balancer', 'dns']);
/** Shared machine tokens: control refuses to start with either. */
export const SHARED_TOKENS = ['ARUS_PROBE_TOKEN', 'ARUS_DNS_TOKEN'];

const option = (run: RoleRun, flag: string, envName: string) => flagValue(run.argv, flag) ?? run.env[envName];

/** The principal a certificate's URIs name (the first spiffe one), or why none. */
export function principalOf(cert: CertInfo): { principal: Principal } | { error: string } {
  const id = identityOf({ subjectaltname: cert.uris.map((u) => `URI:${u}`).join(', '), subject: {} });
  return id ?? { error: `${cert.from} names no identity (no spiffe://arus/… URI)` };
}

/** A host name or address a certificate covers (exact names, and one-label wildcards). */
export function covers(cert: CertInfo, host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (isIP(h)) return cert.ips.includes(h);
  return cert.dnsNames.some((n) => n.toLowerCase() === h || (n.startsWith('*.') && h.endsWith(n.slice(1).toLowerCase()) && !h.slice(0, -n.length + 1).includes('.')));
}

const described = (p: Provided): CertInfo | undefined => (typeof p === 'object' ? p : undefined);

/**
 * The TLS wiring of one setup's Arus processes, as the real roles would take
 * it: control serves TLS (mutual TLS when `requireMutual`), refuses shared
 * machine tokens; every client dials https with a CA and its own certificate,
 * for its own role and region; nothing listens in plain text off loopback;
 * probe and DNS identities are one process each; balancers serve the names
 * and addresses the probes check them by.
 */
export function checkTls(runs: RoleRun[], o: { requireMutual?: boolean; config?: Config } = {}): string[] {
  const problems: string[] = [];
  const controls = runs.filter((r) => r.argv[0] === 'control');
  const mutual = controls.length > 0 && controls.every((r) => option(r, '--tls-client-ca', 'ARUS_TLS_CLIENT_CA'));
  const needFile = (run: RoleRun, what: string, path: string | undefined): Provided => {
    if (!path) return false;
    const p = run.provides(path);
    if (p === false) problems.push(`${run.source}: ${what} ${path} is not provided (no volume, Secret or generated file has it)`);
    return p;
  };

  for (const run of controls) {
    const cert = option(run, '--tls-cert', 'ARUS_TLS_CERT');
    const key = option(run, '--tls-key', 'ARUS_TLS_KEY');
    if (!cert || !key) problems.push(`${run.source}: control serves its API without --tls-cert/--tls-key`);
    if (o.requireMutual && !option(run, '--tls-client-ca', 'ARUS_TLS_CLIENT_CA')) problems.push(`${run.source}: control has no --tls-client-ca (mutual TLS): a client's identity would rest on a token`);
    const info = described(needFile(run, '--tls-cert', cert));
    needFile(run, '--tls-key', key);
    needFile(run, '--tls-client-ca', option(run, '--tls-client-ca', 'ARUS_TLS_CLIENT_CA'));
    if (info && !info.usages.includes('server auth')) problems.push(`${run.source}: --tls-cert ${cert} (${info.from}) is not for server auth`);
    for (const t of SHARED_TOKENS) if (run.env[t] !== undefined) problems.push(`${run.source}: control has ${t} in its environment, which it refuses: give each machine its own credential`);
  }
  // Replicas share their certificate: each one once.
  const controlCerts = [...new Map(controls.map((r) => described(r.provides(option(r, '--tls-cert', 'ARUS_TLS_CERT') ?? ''))).filter((c): c is CertInfo => c !== undefined).map((c) => [c.from, c])).values()];

  // Listeners off loopback: TLS, or plain text said out loud.
  for (const run of runs) {
    const tls = option(run, '--tls-cert', 'ARUS_TLS_CERT') && option(run, '--tls-key', 'ARUS_TLS_KEY');
    const insecure = run.argv.includes('--insecure-plaintext') || run.env.ARUS_INSECURE_PLAINTEXT === 'true';
    for (const flag of ROLE_LISTENERS[run.argv[0]] ?? []) {
      const value = flagValue(run.argv, flag);
      if (!value || tls || insecure) continue;
      for (const item of value.split(',')) {
        const host = item.trim().replace(/:\d+$/, '');
        if (!isLoopbackHost(host)) problems.push(`${run.source}: ${flag} ${item.trim()} is off loopback without --tls-cert/--tls-key or --insecure-plaintext: \`arus ${run.argv[0]}\` refuses to start`);
      }
    }
    if (run.argv[0] !== 'control' && tls) {
      needFile(run, '--tls-cert', option(run, '--tls-cert', 'ARUS_TLS_CERT'));
      needFile(run, '--tls-key', option(run, '--tls-key', 'ARUS_TLS_KEY'));
    }
  }

  // Links to control.
  const seen = new Map<string, RoleRun>();
  for (const run of runs.filter((r) => CLIENT_ROLES.has(r.argv[0]))) {
    const role = run.argv[0];
    const value = flagValue(run.argv, '--control');
    if (!value) continue;
    for (const url of value.split(',').map((x) => x.trim())) {
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        problems.push(`${run.source}: --control ${url} is not a URL`);
        continue;
      }
      if (u.protocol !== 'https:') problems.push(`${run.source}: --control ${url} is not https://: ${isLoopbackHost(u.hostname) ? 'plain text' : `\`arus ${role}\` refuses plain http off loopback`}`);
      for (const c of controlCerts) if (!covers(c, u.hostname)) problems.push(`${run.source}: --control ${url}: control's certificate (${c.from}) does not name ${u.hostname}`);
    }
    if (run.argv.includes('--insecure-plaintext')) problems.push(`${run.source}: --insecure-plaintext on a link to control`);
    const ca = option(run, '--ca', 'ARUS_CA');
    if (!ca) problems.push(`${run.source}: no --ca (or ARUS_CA): control's certificate is checked against the system's CAs only`);
    needFile(run, '--ca', ca);
    const certPath = option(run, '--client-cert', 'ARUS_CLIENT_CERT');
    const keyPath = option(run, '--client-key', 'ARUS_CLIENT_KEY');
    if (mutual && (!certPath || !keyPath)) {
      problems.push(`${run.source}: control requires client certificates (--tls-client-ca), and \`arus ${role}\` has no --client-cert/--client-key`);
      continue;
    }
    const info = described(needFile(run, '--client-cert', certPath));
    needFile(run, '--client-key', keyPath);
    if (!info) continue;
    if (!info.usages.includes('client auth')) problems.push(`${run.source}: --client-cert ${certPath} (${info.from}) is not for client auth`);
    const id = principalOf(info);
    if ('error' in id) {
      problems.push(`${run.source}: --client-cert ${certPath}: ${id.error}`);
      continue;
    }
    const p = id.principal;
    if (p.role !== role) problems.push(`${run.source}: \`arus ${role}\` presents ${info.from}, a ${p.role} identity`);
    const region = flagValue(run.argv, '--region');
    if (region && p.region !== undefined && p.region !== region) problems.push(`${run.source}: --region ${region}, but its certificate (${info.from}) is for region ${p.region}`);
    // One process per probe agent and per DNS node; a region's balancers share its identity.
    if (role === 'probe' || role === 'dns') {
      const key = `${p.role}/${p.agent ?? p.node}`;
      const other = seen.get(key);
      if (other) problems.push(`${run.source}: speaks as ${key}, as ${other.source} does: each ${role === 'probe' ? 'probe agent' : 'DNS node'} needs a certificate of its own`);
      seen.set(key, run);
      if ((run.replicas ?? 1) > 1) problems.push(`${run.source}: ${run.replicas} replicas share ${key}: one process per identity`);
    }
  }

  // Health checks over https verify the listener, and under mutual TLS present a certificate.
  for (const run of runs) {
    const target = run.env.HEALTHCHECK_URL;
    if (!target?.startsWith('https:')) continue;
    if (!run.env.HEALTHCHECK_CA) problems.push(`${run.source}: HEALTHCHECK_URL ${target} without HEALTHCHECK_CA`);
    needFile(run, 'HEALTHCHECK_CA', run.env.HEALTHCHECK_CA);
    if (run.argv[0] === 'control' && mutual) {
      if (!run.env.HEALTHCHECK_CERT || !run.env.HEALTHCHECK_KEY) problems.push(`${run.source}: control requires client certificates: its health check needs HEALTHCHECK_CERT and HEALTHCHECK_KEY`);
      needFile(run, 'HEALTHCHECK_CERT', run.env.HEALTHCHECK_CERT);
      needFile(run, 'HEALTHCHECK_KEY', run.env.HEALTHCHECK_KEY);
    }
    const own = described(run.provides(option(run, '--tls-cert', 'ARUS_TLS_CERT') ?? ''));
    const host = new URL(target).hostname;
    if (own && !covers(own, host)) problems.push(`${run.source}: HEALTHCHECK_URL ${target}: its certificate (${own.from}) does not name ${host}`);
  }

  if (o.config) problems.push(...checkBalancerNames(runs, o.config));
  return problems;
}

/** Each https check of a region's endpoints reaches a balancer whose certificate names the host, and the probes trust its CA. */
function checkBalancerNames(runs: RoleRun[], config: Config): string[] {
  const problems: string[] = [];
  const httpsChecks = config.regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints.flatMap((e) => (e.check?.type === 'http' && e.check.url.startsWith('https:') ? [{ region: r.id, url: e.check.url }] : []))));
  for (const run of runs.filter((r) => r.argv[0] === 'balancer')) {
    const cert = described(run.provides(option(run, '--tls-cert', 'ARUS_TLS_CERT') ?? ''));
    const region = flagValue(run.argv, '--region');
    if (!cert || !region) continue;
    for (const c of httpsChecks.filter((x) => x.region === region)) {
      const host = new URL(c.url).hostname;
      if (!covers(cert, host)) problems.push(`${run.source}: the probes check ${c.url}, and its --tls-cert (${cert.from}) does not name ${host}`);
    }
  }
  // A probe's https checks trust the system's CAs and its --ca (or, for another CA, NODE_EXTRA_CA_CERTS).
  if (httpsChecks.length)
    for (const run of runs.filter((r) => r.argv[0] === 'probe')) {
      const trusted = option(run, '--ca', 'ARUS_CA') ?? run.env.NODE_EXTRA_CA_CERTS;
      if (!trusted) problems.push(`${run.source}: the checks are https (${httpsChecks[0].url}, …), and the probe trusts no CA but the system's (--ca or NODE_EXTRA_CA_CERTS)`);
      if (run.env.NODE_EXTRA_CA_CERTS && run.provides(run.env.NODE_EXTRA_CA_CERTS) === false) problems.push(`${run.source}: NODE_EXTRA_CA_CERTS ${run.env.NODE_EXTRA_CA_CERTS} is not provided`);
    }
  return problems;
}

/**
 * A scrape configuration's TLS: every job https with a CA; `needsClientCert`
 * jobs (control, under mutual TLS) with a certificate and key; files checked
 * with `provides`, server_name with `serverNames` (job → the certificates of
 * its targets).
 */
export function checkScrapeTls(
  config: Obj,
  source: string,
  o: { needsClientCert: string[]; provides?: (path: string) => Provided; serverNames?: Map<string, CertInfo[]>; viewer?: boolean },
): string[] {
  const problems: string[] = [];
  for (const j of config.scrape_configs ?? []) {
    const where = `${source}: job ${j.job_name}`;
    const tls: Obj = j.tls_config ?? {};
    if (j.scheme !== 'https') problems.push(`${where}: scheme must be https (every Arus listener serves TLS)`);
    if (!tls.ca_file) problems.push(`${where}: tls_config.ca_file is missing: Prometheus would check the certificate against the system's CAs`);
    if (tls.insecure_skip_verify === true) problems.push(`${where}: tls_config.insecure_skip_verify`);
    if (o.needsClientCert.includes(j.job_name) && (!tls.cert_file || !tls.key_file)) problems.push(`${where}: control requires client certificates: tls_config needs cert_file and key_file`);
    for (const k of ['ca_file', 'cert_file', 'key_file']) {
      if (!tls[k] || !o.provides) continue;
      const p = o.provides(tls[k]);
      if (p === false) problems.push(`${where}: tls_config.${k} ${tls[k]} is not provided`);
      const info = described(p);
      if (k === 'cert_file' && info) {
        const id = principalOf(info);
        if ('error' in id) problems.push(`${where}: cert_file ${tls[k]}: ${id.error}`);
        else if (id.principal.role !== 'viewer') problems.push(`${where}: cert_file ${tls[k]} is a ${id.principal.role} identity: Prometheus only reads (viewer)`);
      }
    }
    for (const cert of o.serverNames?.get(j.job_name) ?? []) {
      if (!tls.server_name) {
        problems.push(`${where}: targets are scraped by address, which ${cert.from} does not name: set tls_config.server_name`);
        break;
      }
      if (!covers(cert, tls.server_name)) problems.push(`${where}: server_name ${tls.server_name} is not in ${cert.from}`);
    }
  }
  return problems;
}

// ------------------------------------------------------------ cert-manager

/** What a Certificate object says about the tls.crt in its Secret. */
export function certInfoOf(c: Obj): CertInfo {
  return {
    uris: c.spec?.uris ?? [],
    dnsNames: c.spec?.dnsNames ?? [],
    ips: c.spec?.ipAddresses ?? [],
    usages: c.spec?.usages ?? ['digital signature', 'key encipherment'],
    from: `Certificate/${c.metadata?.name}`,
    issuer: c.spec?.issuerRef?.name,
  };
}

/** Certificates and their issuers: each issued by an Issuer here, each CA Issuer's Secret made here, every URI an identity Arus knows. */
export function checkCertificates(objects: Obj[]): string[] {
  const problems: string[] = [];
  const issuers = new Map(objects.filter((o) => o.kind === 'Issuer' || o.kind === 'ClusterIssuer').map((o) => [`${o.kind}/${o.metadata?.name}`, o]));
  const secrets = certificateSecrets(objects);
  for (const i of issuers.values())
    if (i.spec?.ca && !secrets.has(i.spec.ca.secretName) && !objects.some((o) => o.kind === 'Secret' && o.metadata?.name === i.spec.ca.secretName))
      problems.push(`${i.kind}/${i.metadata.name}: spec.ca.secretName ${i.spec.ca.secretName} is no Secret nor Certificate here`);
  const names = new Map<string, string>();
  for (const c of objects.filter((o) => o.kind === 'Certificate')) {
    const where = `Certificate/${c.metadata?.name}`;
    if (!/^cert-manager\.io\//.test(c.apiVersion ?? '')) problems.push(`${where}: apiVersion must be cert-manager.io/v1`);
    const ref = c.spec?.issuerRef ?? {};
    if (!issuers.has(`${ref.kind ?? 'Issuer'}/${ref.name}`)) problems.push(`${where}: issuerRef ${ref.kind ?? 'Issuer'}/${ref.name} is not defined here`);
    if (!c.spec?.secretName) problems.push(`${where}: no secretName`);
    const other = names.get(c.spec?.secretName);
    if (other) problems.push(`${where}: secretName ${c.spec.secretName} is also ${other}'s`);
    names.set(c.spec?.secretName, where);
    const info = certInfoOf(c);
    if (!c.spec?.isCA && !info.uris.length && !info.dnsNames.length && !info.ips.length && !c.spec?.commonName) problems.push(`${where}: names nothing (uris, dnsNames, ipAddresses)`);
    for (const u of info.uris) {
      const id = principalOf({ ...info, uris: [u] });
      if ('error' in id) problems.push(`${where}: ${u}: ${id.error}`);
    }
    if (info.uris.length && !info.usages.includes('client auth')) problems.push(`${where}: an identity certificate must have usages: [client auth]`);
    if (info.dnsNames.length + info.ips.length > 0 && info.uris.length === 0 && !info.usages.includes('server auth')) problems.push(`${where}: a serving certificate must have usages: [server auth]`);
  }
  return problems;
}

// ------------------------------------------------------ the setups' processes

/**
 * Every Arus container of the Kubernetes objects (or, with `o.argv`, every
 * container that function reads a command line from), one run per
 * StatefulSet pod, `$(VAR)`s expanded, with what its volumes provide
 * (Certificates' Secrets described).
 */
export function k8sRuns(objects: Obj[], generated: Map<string, Set<string>> = new Map(), o: { argv?: (c: Obj) => string[] | undefined } = {}): RoleRun[] {
  const certs = new Map(objects.filter((o) => o.kind === 'Certificate').map((c) => [c.spec?.secretName as string, c]));
  const secretKeys = (name: string): Set<string> | undefined => {
    const o = objects.find((x) => x.kind === 'Secret' && x.metadata?.name === name);
    return o ? new Set(Object.keys({ ...o.data, ...o.stringData })) : (generated.get(name) ?? (certs.has(name) ? new Set(CERT_SECRET_KEYS) : undefined));
  };
  const runs: RoleRun[] = [];
  for (const w of workloads(objects))
    for (const c of w.pod.containers ?? []) {
      const raw = (o.argv ?? arusArgv)(c);
      if (!raw) continue;
      const volumes = new Map<string, Obj>((w.pod.volumes ?? []).map((v: Obj) => [v.name, v]));
      const secretOf = (path: string) => {
        const m = (c.volumeMounts ?? []).find((mt: Obj) => posix.dirname(path) === mt.mountPath);
        return m && (volumes.get(m.name)?.secret?.secretName as string | undefined);
      };
      const provides = (path: string): Provided => {
        const secret = secretOf(path);
        if (!secret) return false;
        const file = posix.basename(path);
        if (!secretKeys(secret)?.has(file)) return false;
        const cert = certs.get(secret);
        return cert && file === 'tls.crt' ? certInfoOf(cert) : true;
      };
      // cert-manager's ca.crt is the CA of the Issuer that signed the Secret's certificate.
      const caOf = (path: string) => (posix.basename(path) === 'ca.crt' ? certs.get(secretOf(path) ?? '')?.spec?.issuerRef?.name : undefined);
      // A StatefulSet's pods differ by name ($(POD_NAME)): one run each. A Deployment's are alike: one run for all.
      const pods = w.obj.kind === 'StatefulSet' ? podsOf(w) : podsOf(w).slice(0, 1);
      for (const pod of pods) {
        const known = containerEnv(c, pod.name, objects);
        const env: Record<string, string> = {};
        for (const e of c.env ?? []) env[e.name] = known[e.name] ?? `<${e.valueFrom ? 'from ' + Object.keys(e.valueFrom)[0] : ''}>`;
        const source = `${w.where} container ${c.name}${w.obj.kind === 'StatefulSet' ? ` (pod ${pod.name})` : ''}`;
        runs.push({ source, argv: expandVars(raw.map(String), known), env, provides, caOf, replicas: w.obj.kind === 'StatefulSet' ? 1 : (w.obj.spec?.replicas ?? 1) });
      }
    }
  return runs;
}

/** What `arus certs init` writes, read from its command line: file name → provided (certificates described). */
export function certsInitFiles(argv: string[]): Map<string, Provided> {
  const files = new Map<string, Provided>();
  const list = (flag: string) => (flagValue(argv, flag) ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  const td = flagValue(argv, '--trust-domain') ?? 'arus';
  const names = list('--names');
  const issuer = certsInitCa(argv);
  // --peer: server.crt authenticates as a client too (an etcd member's peer links).
  const serverUsages = argv.includes('--peer') ? ['server auth', 'client auth'] : ['server auth'];
  files.set('ca.crt', true).set('ca.key', true).set('server.key', true);
  files.set('server.crt', { uris: [], dnsNames: names.filter((n) => !isIP(n)), ips: names.filter((n) => isIP(n)), usages: serverUsages, from: `server.crt (certs init --names${argv.includes('--peer') ? ' --peer' : ''})`, issuer });
  for (const id of list('--clients')) {
    const file = id.replaceAll('/', '-');
    files.set(`${file}.crt`, { uris: [`spiffe://${td}/${id}`], dnsNames: [], ips: [], usages: ['client auth'], from: `${file}.crt (certs init --clients ${id})`, issuer });
    files.set(`${file}.key`, true);
  }
  return files;
}

/** How the CA one `arus certs init` makes is named (its --out): each run makes a CA of its own. */
export const certsInitCa = (argv: string[]) => `certs init --out ${flagValue(argv, '--out') ?? '?'}`;

const mountsOf = (s: Obj): { source: string; target: string }[] =>
  (s.volumes ?? []).map((v: Obj | string) => (typeof v === 'string' ? { source: v.split(':')[0], target: v.split(':')[1] } : { source: String(v.source), target: String(v.target) }));

export type CertsRun = { service: string; argv: string[]; volume: string; out: string; files: Map<string, Provided> };

/** Every `node …/arus.js certs init …` of a compose service's shell script, in order. */
function certsInitCommands(s: Obj): string[][] {
  const entry: string[] = Array.isArray(s.entrypoint) ? s.entrypoint.map(String) : [];
  const script = [...entry.slice(2), ...[s.command ?? []].flat()].join(' ');
  return [...script.matchAll(/\bnode\s+\S*bin\/arus\.js\s+(certs\s+init\b[^;&|)]*)/g)].map((m) => m[1].trim().split(/\s+/));
}

/** Each `arus certs init` of the compose service that makes the certificates: the volume it writes, and what it writes there. */
export function composeCertsRuns(doc: Obj): CertsRun[] {
  for (const [name, s] of Object.entries<Obj>(doc.services ?? {})) {
    if (!isArusService(s)) continue;
    const runs = certsInitCommands(s).map((argv) => {
      const out = flagValue(argv, '--out') ?? '';
      const volume = mountsOf(s).find((m) => m.target === out)?.source ?? '';
      return { service: name, argv, volume, out, files: certsInitFiles(argv) };
    });
    if (runs.length) return runs;
  }
  return [];
}

/** The first of them (the Arus CA's). */
export function composeCerts(doc: Obj): CertsRun | undefined {
  return composeCertsRuns(doc)[0];
}

/** A compose service's environment as a map (mapping or KEY=VALUE list). */
export function composeEnv(s: Obj): Record<string, string> {
  const e = s.environment ?? {};
  if (Array.isArray(e)) return Object.fromEntries(e.map((kv: string) => [kv.split('=')[0], kv.slice(kv.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries<string | number | boolean | null>(e).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/** Paths under a compose service's mounts of the certificates' volumes: what `arus certs init` wrote there. */
export function composeProvides(doc: Obj, s: Obj): (path: string) => Provided {
  const runs = composeCertsRuns(doc);
  return (path) => {
    for (const r of runs) {
      const m = mountsOf(s).find((x) => x.source === r.volume && posix.dirname(path) === x.target);
      const f = m && r.files.get(posix.basename(path));
      if (f) return f;
    }
    return false;
  };
}

/** The CA a path's ca.crt is: the `certs init` run that wrote it. */
export function composeCaOf(doc: Obj, s: Obj): (path: string) => string | undefined {
  const runs = composeCertsRuns(doc);
  return (path) => {
    if (posix.basename(path) !== 'ca.crt') return undefined;
    const r = runs.find((x) => mountsOf(s).some((m) => m.source === x.volume && posix.dirname(path) === m.target));
    return r && certsInitCa(r.argv);
  };
}

/** Every Arus service of a compose file but the one that makes the certificates. */
export function composeRuns(doc: Obj): RoleRun[] {
  const runs: RoleRun[] = [];
  for (const [name, s] of Object.entries<Obj>(doc.services ?? {})) {
    const argv = isArusService(s) ? arusCommand(s) : undefined;
    if (!argv?.length || argv[0] === 'certs') continue;
    runs.push({ source: `compose service ${name}`, argv, env: composeEnv(s), provides: composeProvides(doc, s), caOf: composeCaOf(doc, s) });
  }
  return runs;
}

/**
 * The certs service runs first and once: every service that reads the volume
 * waits for it to complete, it makes the files only while there are none
 * (`certs init` refuses to overwrite), and `readers` (service → key files it
 * reads as another user) can read them.
 */
export function checkComposeCerts(doc: Obj, readers: Record<string, string[]> = {}): string[] {
  const all = composeCertsRuns(doc);
  const certs = all[0];
  if (!certs) return ['compose: no service runs `arus certs init`'];
  const problems: string[] = [];
  const services: Obj = doc.services ?? {};
  const c = services[certs.service];
  const script = [...(c.entrypoint ?? []), ...[c.command ?? []].flat()].join(' ');
  for (const r of all) {
    if (!r.volume || !(r.volume in (doc.volumes ?? {}))) problems.push(`compose service ${r.service}: --out ${r.out} is not on a named volume`);
    if (!new RegExp(`test -[ef] ${r.out}/ca\\.crt \\|\\|`).test(script)) problems.push(`compose service ${r.service}: runs certs init even when ${r.out}/ca.crt exists, which it refuses: the second \`up\` would fail`);
  }
  if (new Set(all.map((r) => r.out)).size < all.length) problems.push(`compose service ${certs.service}: two certs init runs write to one folder`);
  if (c.restart !== 'no') problems.push(`compose service ${certs.service}: a one-shot service needs restart: "no"`);
  const waitsFor = (name: string, seen = new Set<string>()): boolean => {
    if (seen.has(name)) return false;
    seen.add(name);
    const deps: Obj = Array.isArray(services[name]?.depends_on) ? {} : (services[name]?.depends_on ?? {});
    if (deps[certs.service]?.condition === 'service_completed_successfully') return true;
    return Object.entries<Obj>(deps).some(([d, cond]) => cond?.condition !== undefined && waitsFor(d, seen));
  };
  // Everything the one-shot service writes (the certificates' volumes, and folders it makes) is read only after it.
  const written = new Set(mountsOf(c).map((m) => m.source).filter((v) => v in (doc.volumes ?? {})));
  for (const [name, s] of Object.entries<Obj>(services))
    for (const v of written)
      if (name !== certs.service && mountsOf(s).some((m) => m.source === v) && !waitsFor(name)) {
        problems.push(`compose service ${name}: mounts ${v} but does not wait for ${certs.service} (depends_on … condition: service_completed_successfully)`);
        break;
      }
  const [uid, gid] = String(c.user ?? '0:0').split(':');
  for (const [name, keys] of Object.entries(readers)) {
    const [ruid, rgid] = String(services[name]?.user ?? '0:0').split(':');
    if (ruid === uid) continue;
    for (const k of keys)
      if (rgid !== gid || !new RegExp(`chmod 0?6[4-7]0 (\\S*/)?${k.replace(/[.]/g, '\\.')}(\\s|\\)|$)`).test(script))
        problems.push(`compose service ${name}: reads ${k} as uid ${ruid}, but certs init writes keys 0600 for uid ${uid}: chmod it 0640 and run ${name} with group ${gid}`);
  }
  return problems;
}

/** An Arus systemd unit as it runs (a template as `instance`); files under /etc/arus/tls/ and /etc/arus/etcd/ are the host's to provide. */
export function unitRun(name: string, text: string, instance?: string): RoleRun | undefined {
  const r = resolveUnit(parseUnit(text), name, instance);
  if (!r) return undefined;
  return { source: name, argv: r.argv, env: Object.fromEntries(r.envs), provides: (path) => path.startsWith('/etc/arus/tls/') || path.startsWith('/etc/arus/etcd/') };
}
