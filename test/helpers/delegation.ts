// The real path in front of Arus: a parent zone served by NSD that delegates
// the Arus zone, and an Unbound recursive resolver that follows the referral.
// Everything listens on port 53 of addresses in a random 127.x.y.0/24 of this
// test process's own: a referral's glue carries no port, so the parent's
// servers and Arus's nodes must all be on 53, each on an address of its own.
import { spawn, spawnSync, execFile, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stopProcess } from './arus.js';
import { regionsWithChecks } from './regions.js';

const which = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
const SBIN = ['/usr/sbin', '/sbin', '/usr/local/sbin'];
/** Finds a daemon that Debian installs in /usr/sbin, which a non-root PATH may lack. */
function sbin(cmd: string): string | undefined {
  if (which(cmd)) return cmd;
  for (const d of SBIN) if (spawnSync(join(d, cmd), ['-h'], { encoding: 'utf8' }).error === undefined) return join(d, cmd);
  return undefined;
}

export const TOOLS = { nsd: sbin('nsd'), unbound: sbin('unbound'), unboundControl: sbin('unbound-control'), dig: which('dig') ? 'dig' : undefined };
/** The Debian packages that provide TOOLS, for the skip message. */
export const PACKAGES = 'nsd unbound dnsutils';
export const missingTools = Object.entries(TOOLS)
  .filter(([, v]) => !v)
  .map(([k]) => k);

/** The four addresses of one test's world, in a 127.x.y.0/24 no other test uses. */
export type Addresses = { parent: string; resolver: string; ns1: string; ns2: string };

function bindable(address: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const udp = createSocket('udp4');
    udp.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? String(e)));
    udp.bind(53, address, () => {
      const tcp = createServer();
      tcp.once('error', (e: NodeJS.ErrnoException) => udp.close(() => resolve(e.code ?? String(e))));
      tcp.listen(53, address, () => tcp.close(() => udp.close(() => resolve(undefined))));
    });
  });
}

/**
 * Picks a random 127.x.y.0/24 (x ≥ 100: the demo and the other tests use
 * 127.0.x.y) whose .1, .2, .11 and .12 have port 53 free on UDP and TCP.
 * Returns the reason instead when port 53 cannot be bound at all (not root).
 */
export async function pickAddresses(): Promise<Addresses | { error: string }> {
  const seen = new Set<string>();
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = `127.${100 + Math.floor(Math.random() * 155)}.${Math.floor(Math.random() * 256)}`;
    const a = { parent: `${base}.1`, resolver: `${base}.2`, ns1: `${base}.11`, ns2: `${base}.12` };
    const errors = await Promise.all(Object.values(a).map(bindable));
    if (errors.includes('EACCES') || errors.includes('EPERM')) return { error: `cannot bind port 53 (${errors.find(Boolean)}): run as root or with CAP_NET_BIND_SERVICE` };
    if (errors.every((e) => e === undefined)) return a;
    errors.forEach((e) => e && seen.add(e));
  }
  // Taken on every address: something holds 0.0.0.0:53, such as the nsd or
  // unbound service a package installation started.
  return { error: `port 53 busy on every 127.x.y.z tried (${[...seen].join(', ')}): is a DNS server listening on 0.0.0.0:53 (systemctl stop nsd unbound)?` };
}

/**
 * The default regions without balancers or checks (every endpoint stays up),
 * with zone.yaml's name servers moved to the two Arus nodes' addresses: the
 * NS and glue Arus serves itself must agree with the parent's.
 */
export function delegatedRegions(dir: string, a: Addresses): string {
  const out = regionsWithChecks(dir, () => undefined);
  const file = join(out, 'zone.yaml');
  const text = readFileSync(file, 'utf8');
  const nameservers = `nameservers:\n  - name: ns1.gslb.example.com\n    addresses: [${a.ns1}]\n  - name: ns2.gslb.example.com\n    addresses: [${a.ns2}]\n`;
  const replaced = text.replace(/^nameservers:\n(?:[ ].*\n)*/m, nameservers);
  if (replaced === text) throw new Error(`no nameservers section to rewrite in ${file}`);
  writeFileSync(file, replaced);
  return out;
}

/** A daemon started by the test, with its output kept for failure messages. */
export type Daemon = { proc: ChildProcess; output(): string; stop(): Promise<void> };

function daemon(cmd: string, args: string[]): Daemon {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  return {
    proc,
    output: () => out,
    stop: () => stopProcess(proc),
  };
}

async function waitFor(d: Daemon, what: string, ready: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (d.proc.exitCode !== null) throw new Error(`${what} exited with ${d.proc.exitCode}:\n${d.output()}`);
    if (await ready()) return;
    if (Date.now() > end) {
      await d.stop();
      throw new Error(`${what} not ready in ${timeoutMs} ms:\n${d.output()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const run = (cmd: string, args: string[]) =>
  new Promise<{ code: number; out: string }>((resolve) =>
    execFile(cmd, args, { encoding: 'utf8', timeout: 10_000 }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) || 1 : 0, out: stdout + stderr })),
  );

/**
 * The parent side, as an operator would write it: the `example.com` zone with
 * the delegation of `gslb` (NS + glue). NSD also serves a root zone that
 * delegates `example.com` to itself, and Unbound's root hints name NSD: the
 * resolver starts from "the root" like any other, and no query can leave the
 * machine (a stub zone alone would leave Unbound's built-in root hints, and
 * the internet, one query outside example.com away).
 */
export function parentZones(a: Addresses, ttl = 3600, serial = 1): { root: string; parent: string } {
  const root = `$TTL ${ttl}
.                   IN SOA a.root-servers.net. hostmaster.example.com. 1 3600 600 604800 60
.                   IN NS  a.root-servers.net.
a.root-servers.net. IN A   ${a.parent}
example.com.        IN NS  ns.example.com.
ns.example.com.     IN A   ${a.parent}
`;
  const parent = `$ORIGIN example.com.
$TTL ${ttl}
@        IN SOA ns.example.com. hostmaster.example.com. ${serial} 3600 600 604800 60
@        IN NS  ns.example.com.
ns       IN A   ${a.parent}
; The delegation: NS records for the child, and glue because the name
; servers' names are inside the zone they serve.
gslb     IN NS  ns1.gslb.example.com.
gslb     IN NS  ns2.gslb.example.com.
ns1.gslb IN A   ${a.ns1}
ns2.gslb IN A   ${a.ns2}
`;
  return { root, parent };
}

/** The files NSD serves the root and `example.com` from, relative to its `dir`. */
export type ParentFiles = { root: string; parent: string };

/**
 * NSD on `a.parent`:53 serving the root and `example.com` from `dir`: the
 * unsigned `parentZones` by default, or the files given (signed ones, which
 * signed-delegation.ts writes).
 */
export async function startNsd(dir: string, a: Addresses, opts: { files?: ParentFiles } = {}): Promise<Daemon> {
  let files = opts.files;
  if (!files) {
    const { root, parent } = parentZones(a);
    writeFileSync(join(dir, 'root.zone'), root);
    writeFileSync(join(dir, 'example.com.zone'), parent);
    files = { root: 'root.zone', parent: 'example.com.zone' };
  }
  return startNsdServing(dir, [a.parent], [
    { name: '.', file: files.root },
    { name: 'example.com', file: files.parent },
  ]);
}

/**
 * NSD on port 53 of each of `addresses`, serving each zone from its file in
 * `dir` (which also holds NSD's pid and state files: one dir per instance).
 * Ready when the first zone's SOA is answered authoritatively.
 */
export async function startNsdServing(dir: string, addresses: string[], zones: { name: string; file: string }[]): Promise<Daemon> {
  const conf = join(dir, 'nsd.conf');
  writeFileSync(
    conf,
    `server:
${addresses.map((ip) => `  ip-address: ${ip}\n`).join('')}  port: 53
  do-ip6: no
  server-count: 1
  reuseport: no
  username: ""
  chroot: ""
  zonesdir: "${dir}"
  database: ""
  pidfile: "${join(dir, 'nsd.pid')}"
  xfrdfile: "${join(dir, 'xfrd.state')}"
  xfrdir: "${dir}"
  zonelistfile: "${join(dir, 'zone.list')}"
  verbosity: 1
remote-control:
  control-enable: no
${zones.map((z) => `zone:\n  name: "${z.name}"\n  zonefile: "${z.file}"\n`).join('')}`,
  );
  const d = daemon(TOOLS.nsd!, ['-d', '-c', conf]);
  await waitFor(d, 'nsd', async () => (await run('dig', [`@${addresses[0]}`, '+time=1', '+tries=1', '+norec', zones[0].name, 'SOA'])).out.includes('flags: qr aa'));
  return d;
}

/** The module line, and the anchor when validating (`man unbound.conf`: subnetcache first, then validator). */
function dnssec(trustAnchorFile: string | undefined): string {
  if (!trustAnchorFile) return '  # ECS without DNSSEC validation (the test zones are unsigned).\n  module-config: "subnetcache iterator"';
  return `  # ECS and DNSSEC validation, in the order unbound.conf(5) gives.
  module-config: "subnetcache validator iterator"
  trust-anchor-file: "${trustAnchorFile}"
  # Why an answer is bogus, in output(), for the failure messages.
  val-log-level: 2`;
}

export type Unbound = Daemon & {
  conf: string;
  /** `unbound-control <args>` over the resolver's local socket. */
  control(...args: string[]): Promise<string>;
  /** Empties the message, RRset and subnet caches (the infrastructure cache, what it knows of each server, stays). */
  flush(): Promise<void>;
  /** What Unbound knows of each name server address: `dump_infra`, by address. */
  infra(): Promise<Record<string, Record<string, string>>>;
  /** Forgets what it knows of each server (`flush_infra all`): servers it has given up on are asked again. */
  forgetServers(): Promise<void>;
};

/**
 * Unbound on `a.resolver`:53, recursing from NSD as its only root server,
 * with ECS on towards the two Arus nodes; validating DNSSEC from the test
 * root's key when given `trustAnchorFile` (zone-file DS or DNSKEY lines).
 */
export async function startUnbound(dir: string, a: Addresses, opts: { trustAnchorFile?: string } = {}): Promise<Unbound> {
  const hints = join(dir, 'root.hints');
  writeFileSync(hints, `.                   3600000 NS a.root-servers.net.\na.root-servers.net. 3600000 A  ${a.parent}\n`);
  const socket = join(dir, 'unbound.ctl');
  const conf = join(dir, 'unbound.conf');
  writeFileSync(
    conf,
    `server:
  verbosity: 1
  interface: ${a.resolver}@53
  outgoing-interface: ${a.resolver}
  do-ip4: yes
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  # The name servers of this test all live on loopback.
  do-not-query-localhost: no
  chroot: ""
  username: ""
  directory: "${dir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  num-threads: 1
  so-reuseport: no
  root-hints: "${hints}"
${dnssec(opts.trustAnchorFile)}
  # ECS goes only to the servers listed here: the Arus nodes.
  send-client-subnet: ${a.ns1}
  send-client-subnet: ${a.ns2}
  max-client-subnet-ipv4: 24
  # A dead server's retransmit timeout is capped at 1 s (default 2 min), and
  # a name gets at most 8 upstream queries, so that a delegation whose servers
  # are all dead is a SERVFAIL in seconds rather than minutes.
  infra-cache-max-rtt: 1000
  max-sent-count: 8
  infra-keep-probing: yes
remote-control:
  control-enable: yes
  control-interface: ${socket}
  control-use-cert: no
`,
  );
  const d = daemon(TOOLS.unbound!, ['-d', '-c', conf]);
  const control = async (...args: string[]) => {
    const r = await run(TOOLS.unboundControl!, ['-c', conf, ...args]);
    if (r.code !== 0) throw new Error(`unbound-control ${args.join(' ')} failed: ${r.out}`);
    return r.out;
  };
  await waitFor(d, 'unbound', async () => (await run(TOOLS.unboundControl!, ['-c', conf, 'status'])).code === 0);
  return {
    ...d,
    conf,
    control,
    async flush() {
      // `reload` is the one command that also empties the subnet cache
      // (flush_zone leaves ECS answers in it); the infrastructure cache survives.
      await control('reload');
      await waitFor(d, 'unbound after reload', async () => (await run(TOOLS.unboundControl!, ['-c', conf, 'status'])).code === 0);
    },
    async forgetServers() {
      await control('flush_infra', 'all');
    },
    async infra() {
      const out: Record<string, Record<string, string>> = {};
      for (const line of (await control('dump_infra')).split('\n')) {
        const [address, zone, ...rest] = line.trim().split(/\s+/);
        if (!zone) continue;
        const fields: Record<string, string> = { zone };
        for (let i = 0; i + 1 < rest.length; i += 2) fields[rest[i]] = rest[i + 1];
        out[address] = fields;
      }
      return out;
    },
  };
}

/** The ADDITIONAL section of dig's output (helpers/dig.ts parses the others). */
export function additional(raw: string): { name: string; type: string; data: string }[] {
  const m = /;; ADDITIONAL SECTION:\n([\s\S]*?)(?:\n\n|$)/.exec(raw);
  if (!m) return [];
  return m[1]
    .split('\n')
    .filter((l) => l && !l.startsWith(';'))
    .map((l) => {
      const [name, , , type, ...data] = l.split(/\s+/);
      return { name, type, data: data.join(' ') };
    });
}
