// The signed delegation, end to end: NSD serves a signed root and
// example.com (signed here with BIND's dnssec-signzone), which holds the DS
// that `arus dnssec ds` printed for gslb.example.com; two `arus dns` nodes,
// each named a signer in zone.dnssec.signers, stream their snapshots (the
// ZSK with them) from control; Unbound validates from the test root's key,
// with ECS on. Each country's subnet gets its region with AD, negative
// answers validate, delv agrees, DNSViz finds no error, a ZSK and a KSK
// rollover pass under a query every 100 ms without one SERVFAIL, and a DS
// that matches no key makes the zone bogus.
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arus, startArus, tempDir, until, type Running } from './helpers/arus.js';
import { createToken } from './helpers/credentials.js';
import { digAsync, type DigResult } from './helpers/dig.js';
import { delegatedRegions, startNsd, startUnbound, type Addresses, type Daemon, type Unbound } from './helpers/delegation.js';
import { delv, dnsviz, signedWorld, signParent, zonemaster, type SignedParent } from './helpers/signed-delegation.js';

const ZONE = 'gslb.example.com';
const API = `api.${ZONE}`;
const CLIENTS = [
  { country: 'ID', subnet: '36.66.0.0/24', want: ['127.0.1.21', '127.0.1.22'] },
  { country: 'SG', subnet: '165.21.42.0/24', want: ['127.0.1.11', '127.0.1.12'] },
  { country: 'TH', subnet: '171.96.7.0/24', want: ['127.0.1.31', '127.0.1.32'] },
  { country: 'PH', subnet: '112.198.5.0/24', want: ['127.0.1.41', '127.0.1.42'] },
];

const { picked, reason, run } = await signedWorld('signed delegation test');

const aRecords = (r: DigResult) =>
  r.answers
    .filter((x) => x.type === 'A')
    .map((x) => x.data)
    .sort();
const randomName = () => `no-${Math.random().toString(36).slice(2, 10)}.${ZONE}`;

/** The delegated regions with short TTLs (a rollover's waits are seconds) and both nodes named as signers. */
function signedRegions(dir: string, a: Addresses): string {
  const out = delegatedRegions(dir, a);
  const file = join(out, 'zone.yaml');
  const text = readFileSync(file, 'utf8')
    .replace(/^( {2}minimum:) \d+/m, '$1 2')
    .replace(/^( {2}ttl:) \d+/m, '$1 3')
    .replace(/^nsTtl: \d+/m, 'nsTtl: 3')
    .replace(/^( {4}ttl:) 30/m, '$1 4')
    .replace('ttl: 3600,', 'ttl: 3,')
    .replace('type: CAA,', 'type: CAA, ttl: 3,');
  writeFileSync(file, `${text}dnssec:\n  signers: [dns-ns1, dns-ns2]\n  dnskeyTtl: 2\n  propagationDelay: 1\n  parentDsTtl: 2\n  zskLifetime: 0\n`);
  return out;
}

describe.skipIf(!run)('signed delegation: signed NSD parent → two signing Arus nodes, validated by Unbound with ECS', () => {
  let a: Addresses;
  let dir: string;
  let db: string;
  let control: Running;
  let parent: SignedParent;
  let nsd: Daemon;
  let unbound: Unbound;
  const nodes: Running[] = [];

  const resolve = (args: string[]) => digAsync(a.resolver, 53, ['+dnssec', ...args]);
  const validated = (name: string, type: string) => delv(a.resolver, name, type, parent.trustAnchorFile);
  // The DS lines exactly as `arus dnssec ds` prints them: with the TTL the KSK rollover waits out (zone.dnssec.parentDsTtl, 2 here).
  const dsOf = () => arus(['dnssec', 'ds', '--db', db]).stdout.split('\n').filter((l) => /\sIN DS\s/.test(l));

  /**
   * Asks Unbound every 100 ms until `done` resolves: a steered answer (a
   * subnet in turn), a random name that does not exist, and a NODATA in turn.
   * Returns every status, and the answers that came back without AD.
   */
  /**
   * Queries through Unbound (one, then 100 ms, then the next) until `done` settles, each under the
   * rollover step `phase()` says is current; how many a step gets depends on how fast the machine is.
   */
  async function queryThroughout(done: Promise<unknown>, phase: () => string): Promise<{ statuses: string[]; unvalidated: string[]; perPhase: Record<string, number> }> {
    const statuses: string[] = [];
    const unvalidated: string[] = [];
    const perPhase: Record<string, number> = {};
    let finished = false;
    void done.finally(() => (finished = true));
    for (let i = 0; !finished; i++) {
      perPhase[phase()] = (perPhase[phase()] ?? 0) + 1;
      const c = CLIENTS[i % CLIENTS.length];
      const args = i % 3 === 0 ? [API, 'A', `+subnet=${c.subnet}`] : i % 3 === 1 ? [randomName(), 'A'] : [`ns1.${ZONE}`, 'AAAA'];
      const r = await resolve([...args, '+time=3', '+tries=1']).catch((e: Error) => ({ status: `no reply: ${e.message}`, flags: [] as string[] }) as DigResult);
      statuses.push(r.status);
      if (r.status !== 'SERVFAIL' && !r.flags.includes('ad')) unvalidated.push(`${args.join(' ')}: ${r.status}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    await done;
    return { statuses, unvalidated, perPhase };
  }

  beforeAll(async () => {
    if (reason) throw new Error(`signed delegation test cannot run: ${reason}`);
    a = picked as Addresses;
    dir = tempDir('arus-signed-delegation-');
    for (const n of ['ns1', 'ns2']) mkdirSync(join(dir, n));
    db = join(dir, 'arus.db');
    const regions = signedRegions(dir, a);
    expect(arus(['apply', regions, '--db', db]).code).toBe(0);
    const init = arus(['dnssec', 'init', '--db', db]);
    expect(init.code, init.stderr).toBe(0);
    parent = await signParent(dir, a, { ds: dsOf(), ttl: 2 });
    const tokens = Object.fromEntries((['ns1', 'ns2'] as const).map((n) => [n, createToken(db, { role: 'dns', node: `dns-${n}` })]));
    control = await startArus(['control', '--db', db, '--regions', regions, '--api-listen', '127.0.0.1:0'], { env: { ARUS_ADMIN_TOKEN: 'signed-admin' }, timeoutMs: 30_000 });
    const startNode = (n: 'ns1' | 'ns2') =>
      startArus(['dns', '--control', control.api!, '--token', tokens[n], '--id', `dns-${n}`, '--snapshot', join(dir, n, 'snapshot.json'), '--dns-listen', `${a[n]}:53`, '--metrics-listen', '127.0.0.1:0'], { timeoutMs: 30_000 });
    const [n1, n2, server] = await Promise.all([startNode('ns1'), startNode('ns2'), startNsd(dir, a, { files: parent.files })]);
    nodes.push(n1, n2);
    nsd = server;
    unbound = await startUnbound(dir, a, { trustAnchorFile: parent.trustAnchorFile });
  }, 90_000);

  afterAll(async () => {
    await Promise.all([...nodes.map((n) => n.stop()), unbound?.stop(), nsd?.stop(), control?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('each node signs with the ZSK control sent it, kept on its disk readable by its owner only', async () => {
    for (const n of ['ns1', 'ns2'] as const) {
      const file = join(dir, n, 'snapshot.json');
      await until(() => statSync(file, { throwIfNoEntry: false })?.size ?? 0, (size) => size > 0);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(JSON.parse(readFileSync(file, 'utf8')).state.dnssec.zsk.privateKey).toMatch(/BEGIN PRIVATE KEY/);
      const r = await digAsync(a[n], 53, [API, 'A', '+dnssec', '+norec']);
      expect(r.answers.some((x) => x.type === 'RRSIG'), n).toBe(true);
    }
  });

  it('through Unbound: each country\'s subnet gets its region, validated (AD), and delv agrees', async () => {
    for (const c of CLIENTS) {
      const r = await resolve([API, 'A', `+subnet=${c.subnet}`]);
      expect(r.status, c.country).toBe('NOERROR');
      expect(r.flags, `${c.country}: ${r.raw}`).toContain('ad');
      expect(aRecords(r), c.country).toEqual(c.want);
      expect(r.clientSubnet, c.country).toMatch(new RegExp(`^${c.subnet}/([1-9]\\d?)$`));
    }
    const d = await validated(API, 'A');
    expect(d.status, d.raw).toBe('fully validated');
  });

  it('through Unbound: a random name that does not exist and an AAAA NODATA get validated negative answers, and delv agrees', async () => {
    const nx = randomName();
    const r = await resolve([nx, 'A']);
    expect(['NOERROR', 'NXDOMAIN']).toContain(r.status);
    expect(r.answers.filter((x) => x.type === 'A')).toEqual([]);
    expect(r.flags, r.raw).toContain('ad');
    const nodata = await resolve([`ns1.${ZONE}`, 'AAAA']);
    expect(nodata.status).toBe('NOERROR');
    expect(nodata.answers.filter((x) => x.type === 'AAAA')).toEqual([]);
    expect(nodata.flags, nodata.raw).toContain('ad');
    for (const [name, type] of [
      [randomName(), 'A'],
      [`ns1.${ZONE}`, 'AAAA'],
    ]) {
      const d = await validated(name, type);
      expect(d.status, d.raw).toBe('negative');
    }
  });

  it('DNSViz and Zonemaster find no error in the zone', async () => {
    const v = await dnsviz(ZONE, { root: a.parent, trustAnchorFile: parent.trustAnchorFile, dir });
    expect(v.errors, JSON.stringify(v.errors, null, 1)).toEqual([]);
    // It looked: the zone is in the analysis, with its keys.
    expect(JSON.stringify(v.grok)).toContain('gslb.example.com.');
    expect(JSON.stringify(v.grok)).toMatch(/DNSKEY/);
    const z = await zonemaster(ZONE, { root: a.parent, dir });
    expect(z.findings.filter((f) => f.level === 'error'), JSON.stringify(z.findings, null, 1)).toEqual([]);
  }, 60_000);

  it('rolls the ZSK under a query every 100 ms through Unbound: 0 SERVFAIL, every answer validated', async () => {
    const roll = arus(['dnssec', 'roll', '--zsk', '--db', db]);
    expect(roll.code, roll.stderr).toBe(0);
    const tag = /ZSK (\d+) \(zsk-/.exec(roll.stdout)![1];
    const signer = async () => (await digAsync(a.ns1, 53, [ZONE, 'SOA', '+dnssec', '+norec'])).answers.find((x) => x.type === 'RRSIG')?.data.split(/\s+/)[6];
    const keys = async () => (await digAsync(a.ns2, 53, [ZONE, 'DNSKEY', '+norec'])).answers.length;
    // The whole rollover: the new key published, signing, the old one gone from both nodes; then two DNSKEY TTLs more.
    let phase = 'rolled';
    const done = (async () => {
      await until(keys, (n) => n === 3, 15_000, 200);
      phase = 'published';
      await until(signer, (t) => t === tag, 15_000, 200);
      phase = 'signing';
      await until(keys, (n) => n === 2, 30_000, 200);
      phase = 'old key gone';
      await new Promise((res) => setTimeout(res, 4000));
    })();
    const { statuses, unvalidated, perPhase } = await queryThroughout(done, () => phase);
    console.log(`ZSK rollover: ${statuses.length} queries through Unbound (${JSON.stringify(perPhase)}), ${statuses.filter((s) => s === 'SERVFAIL').length} SERVFAIL`);
    // Queries while the new key was published, while it signed, and after the old one went (the step
    // from the roll to the new key's publication may be over before the first query returns).
    for (const p of ['published', 'signing', 'old key gone']) expect(perPhase[p] ?? 0, p).toBeGreaterThanOrEqual(2);
    expect(statuses.filter((s) => s !== 'NOERROR' && s !== 'NXDOMAIN')).toEqual([]);
    expect(unvalidated).toEqual([]);
  }, 90_000);

  it('rolls the KSK under a query every 100 ms: CDS names the new key, the parent takes its DS, the old KSK goes, 0 SERVFAIL', async () => {
    const oldDs = dsOf();
    const roll = arus(['dnssec', 'roll', '--ksk', '--db', db]);
    expect(roll.code, roll.stderr).toBe(0);
    const newDs = roll.stdout.split('\n').filter((l) => /\sIN DS\s/.test(l));
    expect(newDs).toHaveLength(1);
    expect(newDs[0]).toMatch(/^gslb\.example\.com\. 2 IN DS /);
    const cds = async () => (await digAsync(a.ns1, 53, [ZONE, 'CDS', '+norec'])).answers.map((x) => x.data.split(/\s+/)[0]);
    const sigsOverKeys = async () => (await digAsync(a.ns1, 53, [ZONE, 'DNSKEY', '+dnssec', '+norec'])).answers.filter((x) => x.type === 'RRSIG').length;
    let phase = 'rolled';
    const done = (async () => {
      await until(cds, (tags) => tags.length === 2, 15_000, 200);
      phase = 'both keys';
      // Once every cache can hold the new DNSKEY set, the parent swaps the DS, and Arus is told.
      await until(() => arus(['dnssec', 'roll', '--ksk', '--db', db]).stdout, (out) => /ready: the parent may serve its DS now/.test(out), 15_000, 250);
      await parent.resign(newDs);
      phase = 'new DS';
      const published = arus(['dnssec', 'roll', '--ksk', '--ds-published', '--db', db]);
      if (published.code !== 0) throw new Error(published.stderr);
      await until(cds, (tags) => tags.length === 1, 15_000, 200);
      await until(sigsOverKeys, (n) => n === 1, 20_000, 200);
      phase = 'old key gone';
      await new Promise((res) => setTimeout(res, 4000));
    })();
    const { statuses, unvalidated, perPhase } = await queryThroughout(done, () => phase);
    console.log(`KSK rollover: ${statuses.length} queries through Unbound (${JSON.stringify(perPhase)}), ${statuses.filter((s) => s === 'SERVFAIL').length} SERVFAIL`);
    // Queries with both KSKs published, after the parent's DS swap, and after the old KSK went.
    for (const p of ['both keys', 'new DS', 'old key gone']) expect(perPhase[p] ?? 0, p).toBeGreaterThanOrEqual(2);
    expect(statuses.filter((s) => s !== 'NOERROR' && s !== 'NXDOMAIN')).toEqual([]);
    expect(unvalidated).toEqual([]);
    expect(dsOf()).not.toEqual(oldDs);
    const d = await validated(API, 'A');
    expect(d.status, d.raw).toBe('fully validated');
  }, 120_000);

  it('a DS in the parent that matches no key: Unbound answers SERVFAIL (bogus) and delv says bogus', async () => {
    await parent.resign([`${ZONE}. 2 IN DS 12345 13 2 ${'AB'.repeat(32)}`]);
    await unbound.flush();
    const r = await resolve([API, 'A', `+subnet=${CLIENTS[0].subnet}`]);
    expect(r.status, r.raw).toBe('SERVFAIL');
    // delv, validating itself from the root's key (with CD, so it sees the data), finds the chain broken.
    const d = await validated(API, 'A');
    expect(d.status, d.raw).toBe('bogus');
  }, 30_000);
});
