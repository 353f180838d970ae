// The delegation of delegation.ts, signed: the test root and example.com are
// signed with BIND's dnssec-keygen and dnssec-signzone (example.com's DS in
// the root, the child's DS, as `arus dnssec ds` prints it, in example.com),
// and the root's key is the trust anchor that Unbound, delv, DNSViz and
// Zonemaster validate from. Nothing is asked of the real root: every tool is
// pointed at the test's own servers.
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { missingTools, PACKAGES, parentZones, pickAddresses, type Addresses, type ParentFiles } from './delegation.js';

/** The full path of `cmd` on PATH (dnsviz's is read for its #! line), or undefined. */
function tool(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}
export const SIGNED_TOOLS = {
  dnssecKeygen: tool('dnssec-keygen'),
  dnssecSignzone: tool('dnssec-signzone'),
  dnssecDsfromkey: tool('dnssec-dsfromkey'),
  delv: tool('delv'),
  dnsviz: tool('dnsviz'),
  zonemaster: tool('zonemaster-cli'),
};
/** The Debian packages that provide SIGNED_TOOLS, for the skip message. */
export const SIGNED_PACKAGES = 'bind9-utils bind9-dnsutils dnsviz zonemaster-cli';
export const missingSignedTools = Object.entries(SIGNED_TOOLS)
  .filter(([, v]) => !v)
  .map(([k]) => k);

type Ran = { code: number; stdout: string; stderr: string };

function exec(cmd: string, args: string[], timeoutMs = 15_000): Promise<Ran> {
  return new Promise((resolve) =>
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) || 1 : 0, stdout, stderr: err?.killed ? `${stderr}\n(killed after ${timeoutMs} ms)` : stderr }),
    ),
  );
}

async function must(cmd: string, args: string[], timeoutMs?: number): Promise<string> {
  const r = await exec(cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** A zone signed by `signZone`: its signed file, its KSK's DS lines and DNSKEY line. */
export type SignedZone = { file: string; ds: string[]; ksk: string };

const fileLabel = (origin: string) => (origin === '.' ? 'root' : origin);

/**
 * The zone's KSK and ZSK (ECDSA P-256 with SHA-256, algorithm 13), made on
 * first use and reused on re-signing; returns the KSK's .key file.
 */
async function zoneKeys(keys: string, origin: string, ttl: number): Promise<string> {
  mkdirSync(keys, { recursive: true });
  const keygen = (...flags: string[]) => must(SIGNED_TOOLS.dnssecKeygen!, ['-q', '-K', keys, '-a', 'ECDSAP256SHA256', '-L', String(ttl), ...flags, origin]);
  const files = readdirSync(keys).filter((f) => f.endsWith('.key'));
  if (files.length === 0) {
    const ksk = (await keygen('-f', 'KSK')).trim();
    await keygen();
    return join(keys, `${ksk}.key`);
  }
  // The KSK is the key with the SEP flag (257).
  const ksk = files.find((f) => / DNSKEY 257 /.test(readFileSync(join(keys, f), 'utf8')));
  if (!ksk) throw new Error(`no KSK among ${files.join(', ')} in ${keys}`);
  return join(keys, ksk);
}

/**
 * Signs `text`, the zone `origin`, into `dir/<origin>.signed` with NSEC,
 * signatures valid from an hour ago (clocks need not agree to the second)
 * for a day; `ttl` is the DNSKEYs' TTL. The keys live in `dir/keys/<origin>`
 * and are kept for re-signing.
 */
export async function signZone(dir: string, origin: string, text: string, ttl = 3600): Promise<SignedZone> {
  const label = fileLabel(origin);
  const keys = join(dir, 'keys', label);
  const kskFile = await zoneKeys(keys, origin, ttl);
  const unsigned = join(dir, `${label}.unsigned`);
  const file = join(dir, `${label}.signed`);
  writeFileSync(unsigned, text);
  // -S: smart signing, which adds the DNSKEYs from -K to the apex; -d keeps the dsset- file out of the cwd.
  await must(SIGNED_TOOLS.dnssecSignzone!, ['-q', '-S', '-K', keys, '-d', keys, '-o', origin, '-f', file, '-s', 'now-3600', '-e', 'now+86400', unsigned]);
  const ds = (await must(SIGNED_TOOLS.dnssecDsfromkey!, ['-2', kskFile])).trim().split('\n');
  const ksk = readFileSync(kskFile, 'utf8')
    .split('\n')
    .find((l) => / DNSKEY 257 /.test(l) && !l.startsWith(';'))!;
  return { file, ds, ksk };
}

export type SignedParent = {
  /** For startNsd's `files`. */
  files: ParentFiles;
  /**
   * The test root's KSK as a zone-file DNSKEY line: Unbound's
   * trust-anchor-file and DNSViz's -t read it as it is; `delv` turns it into
   * the trust-anchors {} clause delv's -a wants.
   */
  trustAnchorFile: string;
  /** Re-signs example.com with `ds` as the child's DS set, at the next serial, and waits until the running NSD serves it. */
  resign(ds: string[]): Promise<void>;
};

const withDs = (zone: string, ds: string[]) => `${zone}; The child's DS set.\n${ds.join('\n')}\n`;

/**
 * Writes and signs the root and example.com of `parentZones`, with the child's
 * `ds` lines (full presentation lines, owner gslb.example.com.) in
 * example.com and example.com's DS in the root.
 */
export async function signParent(dir: string, a: Addresses, opts: { ds: string[]; ttl?: number }): Promise<SignedParent> {
  const ttl = opts.ttl ?? 3600;
  let serial = 1;
  const signExample = (ds: string[]) => signZone(dir, 'example.com', withDs(parentZones(a, ttl, serial).parent, ds), ttl);
  const example = await signExample(opts.ds);
  const root = await signZone(dir, '.', withDs(parentZones(a, ttl).root, example.ds), ttl);
  const trustAnchorFile = join(dir, 'root.anchor');
  writeFileSync(trustAnchorFile, `${root.ksk}\n`);
  return {
    files: { root: `${fileLabel('.')}.signed`, parent: `${fileLabel('example.com')}.signed` },
    trustAnchorFile,
    async resign(ds) {
      serial++;
      await signExample(ds);
      await reloadNsd(dir, a.parent, 'example.com', serial);
    },
  };
}

/**
 * NSD 4 rereads the zone files whose mtime changed on SIGHUP (nsd(8);
 * delegation.ts runs it without nsd-control). Its pid is in `dir/nsd.pid`,
 * where startNsd has it write it.
 */
async function reloadNsd(dir: string, server: string, zone: string, serial: number): Promise<void> {
  process.kill(Number(readFileSync(join(dir, 'nsd.pid'), 'utf8').trim()), 'SIGHUP');
  const end = Date.now() + 10_000;
  for (;;) {
    const r = await exec('dig', [`@${server}`, '+time=1', '+tries=1', '+norec', '+short', zone, 'SOA']);
    if (r.stdout.split(/\s+/)[2] === String(serial)) return;
    if (Date.now() > end) throw new Error(`NSD on ${server} still serves ${zone} at serial ${r.stdout.trim()}, not ${serial}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

export type DelvStatus = 'fully validated' | 'negative' | 'unsigned' | 'bogus' | 'failed';

/**
 * delv(1)'s own trust-anchors clause for the DNSKEY lines of `anchorFile`:
 * delv reads named.conf syntax, not zone-file lines (it treats static-key
 * and initial-key alike).
 */
function delvAnchors(anchorFile: string): string {
  const out = `${anchorFile}.delv`;
  const keys = readFileSync(anchorFile, 'utf8')
    .split('\n')
    .map((l) => /^(\S+)\s+(?:\d+\s+)?(?:IN\s+)?DNSKEY\s+(\d+)\s+(\d+)\s+(\d+)\s+(.+)$/.exec(l.trim()))
    .filter((m) => m !== null)
    .map(([, name, flags, proto, alg, key]) => `  "${name}" static-key ${flags} ${proto} ${alg} "${key.replace(/\s+/g, '')}";`);
  writeFileSync(out, `trust-anchors {\n${keys.join('\n')}\n};\n`);
  return out;
}

/**
 * `delv @resolver name type` validating from the test root's key (`-a`;
 * +root's default "." is the anchor's name). +cdflag: delv asks with CD set,
 * so that it judges the data itself: without it, a validating resolver's
 * SERVFAIL leaves delv with nothing but "resolution failed: failure".
 */
export async function delv(resolver: string, name: string, type: string, anchorFile: string, extra: string[] = []): Promise<{ status: DelvStatus; raw: string }> {
  const r = await exec(SIGNED_TOOLS.delv!, [`@${resolver}`, '-a', delvAnchors(anchorFile), '+cdflag', name, type, ...extra]);
  const raw = r.stdout + r.stderr;
  return { status: delvStatus(raw), raw };
}

function delvStatus(raw: string): DelvStatus {
  if (/^; fully validated$/m.test(raw)) return 'fully validated';
  if (/^; negative response, fully validated$/m.test(raw)) return 'negative';
  if (/^; unsigned answer$/m.test(raw)) return 'unsigned';
  // The reason is on the lines before the last one, which says only "resolution failed: failure".
  if (/^;; (?:broken trust chain|no valid (?:signature|DS|KEY|RRSIG)|insecurity proof failed|validating .*: )/m.test(raw)) return 'bogus';
  return 'failed';
}

/** A problem DNSViz or Zonemaster reports, with where it was found. */
export type Finding = { level: 'error' | 'warning'; code: string; description: string; where: string };

/**
 * Debian 12's dnsviz 0.9.4 checks pygraphviz's version with
 * `from pygraphviz import release`, a module pygraphviz 1.7 no longer has
 * (dnsviz/dnsviz#98), so its grok always exits "pygraphviz is required". This
 * runs dnsviz with the version put back where it looks, when it is missing.
 */
const DNSVIZ_SHIM = `
import runpy, sys, types
try:
    from pygraphviz import release
except ImportError:
    import pygraphviz
    release = types.ModuleType('pygraphviz.release')
    release.version = pygraphviz.__version__
    sys.modules['pygraphviz.release'] = pygraphviz.release = release
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
`;

/** The interpreter on dnsviz's #! line (Debian's python3, whose dist-packages hold dnsviz), not a python3 on PATH. */
function dnsvizPython(): { python: string; script: string } {
  const script = SIGNED_TOOLS.dnsviz!;
  const shebang = /^#!\s*(\S+)/.exec(readFileSync(script, 'utf8'))?.[1];
  if (!shebang) throw new Error(`no #! line in ${script}`);
  return { python: shebang, script };
}

/**
 * DNSViz on `zone` as its authoritative servers serve it, from the test
 * root down: `probe -A` with the root's server given (-x; "." takes only the
 * name=address form) and the ancestry from "." (-a .), since DNSViz's own
 * root hints are the real root's; then `grok` with the test root's key (-t)
 * and -P, as every server here is on a loopback (private) address. Returns
 * every error and warning grok puts anywhere in its JSON, each with its path.
 */
export async function dnsviz(zone: string, opts: { root: string; trustAnchorFile: string; dir: string }): Promise<{ errors: Finding[]; warnings: Finding[]; grok: unknown }> {
  const probe = join(opts.dir, `dnsviz-${zone}.probe.json`);
  const grok = join(opts.dir, `dnsviz-${zone}.grok.json`);
  await must(SIGNED_TOOLS.dnsviz!, ['probe', '-4', '-A', '-a', '.', '-x', `.:a.root-servers.net=${opts.root}`, '-o', probe, zone], 60_000);
  const { python, script } = dnsvizPython();
  await must(python, ['-c', DNSVIZ_SHIM, script, 'grok', '-P', '-t', opts.trustAnchorFile, '-r', probe, '-o', grok], 60_000);
  const json: unknown = JSON.parse(readFileSync(grok, 'utf8'));
  const found = grokFindings(json, '');
  return { errors: found.filter((f) => f.level === 'error'), warnings: found.filter((f) => f.level === 'warning'), grok: json };
}

/** The `errors` and `warnings` lists at any depth of grok's output. */
function grokFindings(node: unknown, where: string): Finding[] {
  if (Array.isArray(node)) return node.flatMap((x, i) => grokFindings(x, `${where}[${i}]`));
  if (typeof node !== 'object' || node === null) return [];
  return Object.entries(node).flatMap(([key, value]) => {
    if ((key === 'errors' || key === 'warnings') && Array.isArray(value))
      return value.map((e: { code?: string; description?: string }): Finding => ({ level: key === 'errors' ? 'error' : 'warning', code: String(e.code), description: String(e.description), where }));
    return grokFindings(value, where ? `${where}/${key}` : key);
  });
}

/**
 * What Zonemaster always reports of a world on loopback, whatever the zone:
 * name servers on 127/8 (ADDRESS01, an error) and without reverse names
 * (ADDRESS02). Left out of `zonemaster`'s findings, and listed so the reader
 * knows what was.
 */
export const ZONEMASTER_LOOPBACK_TAGS = ['NAMESERVER_IP_PRIVATE_NETWORK', 'NAMESERVER_IP_WITHOUT_REVERSE'];

/**
 * zonemaster-cli on `zone`, delegated from the test root: --hints makes its
 * recursor start at the test root instead of the real one (so every query,
 * its ASN and reverse look-ups included, goes to the test's servers), and
 * --no-ipv6 as the world has none. It has no trust anchor option: it checks
 * the DS against the child's DNSKEYs and the signatures, not the chain to the
 * root. Returns its WARNING-or-worse messages but ZONEMASTER_LOOPBACK_TAGS.
 */
export async function zonemaster(zone: string, opts: { root: string; dir: string }): Promise<{ findings: Finding[]; raw: unknown[] }> {
  const hints = join(opts.dir, 'zonemaster.hints');
  writeFileSync(hints, `.                   3600000 NS a.root-servers.net.\na.root-servers.net. 3600000 A  ${opts.root}\n`);
  const out = await must(SIGNED_TOOLS.zonemaster!, ['--no-ipv6', '--hints', hints, '--level', 'WARNING', '--raw', '--json', '--no-progress', zone], 120_000);
  const raw = JSON.parse(out) as { level: string; module: string; testcase: string; tag: string; args?: unknown }[];
  // --raw: the message tag and its arguments, which are stable, rather than the English sentence.
  const findings = raw
    .filter((m) => !ZONEMASTER_LOOPBACK_TAGS.includes(m.tag))
    .map((m): Finding => ({ level: m.level === 'WARNING' ? 'warning' : 'error', code: m.tag, description: JSON.stringify(m.args ?? {}), where: `${m.module}/${m.testcase}` }));
  return { findings, raw };
}

/**
 * Whether a signed delegation test can run here: the addresses it may use, or
 * why not (a missing tool, port 53 not bindable). In CI a missing tool is a
 * failure, not a skip: `run` stays true and the test's beforeAll throws `reason`.
 */
export async function signedWorld(what: string): Promise<{ picked?: Addresses; reason?: string; run: boolean }> {
  const missing = [...missingTools, ...missingSignedTools];
  const picked = missing.length ? undefined : await pickAddresses();
  const reason = missing.length
    ? `needs ${missing.join(', ')} (Debian: apt-get install -y --no-install-recommends ${PACKAGES} ${SIGNED_PACKAGES})`
    : picked && 'error' in picked
      ? picked.error
      : undefined;
  const run = reason === undefined || Boolean(process.env.CI);
  if (!run) console.warn(`${what} skipped: ${reason}`);
  return { picked: picked && !('error' in picked) ? picked : undefined, reason, run };
}
