// The signed delegation harness (helpers/signed-delegation.ts) proved against
// a signer known to be right, BIND's dnssec-signzone, before Arus signs: a
// signed gslb.example.com served by a second NSD on the two name server
// addresses, its DS in the signed test parent, and Unbound validating from
// the test root's key. A good chain validates (ad, delv, DNSViz, Zonemaster);
// the same chain with a DS that matches no key is bogus to each of them.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/arus.js';
import { digAsync } from './helpers/dig.js';
import { startNsd, startNsdServing, startUnbound, type Addresses, type Daemon, type Unbound } from './helpers/delegation.js';
import { delv, dnsviz, signedWorld, signParent, signZone, zonemaster, type SignedParent, type SignedZone } from './helpers/signed-delegation.js';

const ZONE = 'gslb.example.com';
const API = `api.${ZONE}`;
const API_ADDRESSES = ['192.0.2.1', '192.0.2.2', '192.0.2.3'];

const { picked, reason, run } = await signedWorld('signed parent test');

/** The child, as small as a delegated zone can be: apex, its two name servers, one name with three addresses. */
const childZone = (a: Addresses) => `$TTL 300
${ZONE}.     IN SOA ns1.${ZONE}. hostmaster.example.com. 1 3600 600 604800 60
${ZONE}.     IN NS  ns1.${ZONE}.
${ZONE}.     IN NS  ns2.${ZONE}.
ns1.${ZONE}. IN A   ${a.ns1}
ns2.${ZONE}. IN A   ${a.ns2}
${API_ADDRESSES.map((ip) => `${API}. IN A ${ip}`).join('\n')}
`;

/** The DS line with its digest's last hex digit changed: the right key tag and algorithm, a digest of no key. */
const wrongDigest = (ds: string) => ds.replace(/([0-9A-F])$/i, (d) => (d.toUpperCase() === '0' ? '1' : '0'));

describe.skipIf(!run)('signed parent harness: BIND-signed child under the signed test root, through validating Unbound', () => {
  let a: Addresses;
  let dir: string;
  let child: SignedZone;
  let parent: SignedParent;
  let childNsd: Daemon;
  let nsd: Daemon;
  let unbound: Unbound;
  const resolve = (args: string[]) => digAsync(a.resolver, 53, args);

  beforeAll(async () => {
    if (reason) throw new Error(`signed parent test cannot run: ${reason}`);
    a = picked as Addresses;
    dir = tempDir('arus-signed-parent-');
    const childDir = join(dir, 'child');
    mkdirSync(childDir);
    child = await signZone(childDir, ZONE, childZone(a), 300);
    parent = await signParent(dir, a, { ds: child.ds });
    [childNsd, nsd] = await Promise.all([startNsdServing(childDir, [a.ns1, a.ns2], [{ name: ZONE, file: child.file }]), startNsd(dir, a, { files: parent.files })]);
    unbound = await startUnbound(dir, a, { trustAnchorFile: parent.trustAnchorFile });
  }, 30_000);

  afterAll(async () => {
    await Promise.all([unbound?.stop(), nsd?.stop(), childNsd?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the parent serves the child DS it was given, signed by example.com', async () => {
    const r = await digAsync(a.parent, 53, [ZONE, 'DS', '+dnssec', '+norec']);
    expect(r.flags).toContain('aa');
    // dig splits a long digest in two words.
    const rdata = (data: string) => {
      const [tag, alg, type, ...digest] = data.trim().split(/\s+/);
      return `${tag} ${alg} ${type} ${digest.join('')}`;
    };
    expect(r.answers.filter((x) => x.type === 'DS').map((x) => rdata(x.data))).toEqual(child.ds.map((ds) => rdata(ds.split(/\sDS\s/)[1])));
    expect(r.answers.find((x) => x.type === 'RRSIG')?.data).toMatch(/^DS 13 3 \d+ \d+ \d+ \d+ example\.com\. /);
  });

  it('through Unbound: the answer is authenticated (ad), and delv validates it from the test root', async () => {
    const r = await resolve([API, 'A', '+dnssec']);
    expect(r.status, r.raw).toBe('NOERROR');
    expect(r.flags, unbound.output()).toContain('ad');
    expect(r.answers.filter((x) => x.type === 'A').map((x) => x.data).sort()).toEqual(API_ADDRESSES);
    const v = await delv(a.resolver, API, 'A', parent.trustAnchorFile);
    expect(v.status, v.raw).toBe('fully validated');
  });

  it('through Unbound: a name that does not exist is an authenticated NXDOMAIN, and delv validates the denial', async () => {
    const name = `nx-${Math.random().toString(36).slice(2, 10)}.${ZONE}`;
    const r = await resolve([name, 'A', '+dnssec']);
    expect(r.status, r.raw).toBe('NXDOMAIN');
    expect(r.flags, unbound.output()).toContain('ad');
    const v = await delv(a.resolver, name, 'A', parent.trustAnchorFile);
    expect(v.status, v.raw).toBe('negative');
  });

  it('DNSViz finds no errors or warnings in the chain, and Zonemaster none but the loopback ones', async () => {
    const t = Date.now();
    const viz = await dnsviz(ZONE, { root: a.parent, trustAnchorFile: parent.trustAnchorFile, dir });
    const tViz = Date.now() - t;
    expect(viz.errors).toEqual([]);
    expect(viz.warnings).toEqual([]);
    // Every zone of the chain was analysed and found secure.
    expect(Object.keys(viz.grok as object).sort()).toEqual(['.', 'example.com.', `${ZONE}.`]);
    const zm = await zonemaster(ZONE, { root: a.parent, dir });
    expect(zm.findings).toEqual([]);
    console.log(`dnsviz probe + grok ${tViz} ms, zonemaster ${Date.now() - t - tViz} ms`);
  }, 60_000);

  describe('with a DS in the parent that matches no key of the child', () => {
    beforeAll(async () => {
      await parent.resign(child.ds.map(wrongDigest));
      await unbound.flush();
    });

    it('Unbound answers SERVFAIL, and delv finds the chain bogus', async () => {
      const r = await resolve([API, 'A', '+dnssec']);
      expect(r.status, r.raw).toBe('SERVFAIL');
      expect(unbound.output()).toMatch(/validation failure <api\.gslb\.example\.com\. A IN>/);
      const v = await delv(a.resolver, API, 'A', parent.trustAnchorFile);
      expect(v.status, v.raw).toBe('bogus');
      // With checking disabled the data is still there: the failure is the chain, not the answer.
      const cd = await resolve([API, 'A', '+dnssec', '+cd']);
      expect(cd.status).toBe('NOERROR');
    });

    it('DNSViz and Zonemaster report the DS that matches no DNSKEY', async () => {
      const viz = await dnsviz(ZONE, { root: a.parent, trustAnchorFile: parent.trustAnchorFile, dir });
      // The DS's digest is wrong, so no DNSKEY of the child is a secure entry point; nothing above it is at fault.
      expect(viz.errors.map((e) => e.code).sort(), JSON.stringify(viz.errors)).toEqual(['DIGEST_INVALID', 'NO_SEP']);
      expect(viz.errors.every((e) => e.where.startsWith(`${ZONE}./delegation`)), JSON.stringify(viz.errors)).toBe(true);
      const zm = await zonemaster(ZONE, { root: a.parent, dir });
      expect(zm.findings.map((f) => f.code)).toContain('DS02_NO_MATCH_DS_DNSKEY');
    }, 60_000);
  });
});
