// Arus's DNSSEC primitives checked by BIND's own tools (Debian's bind9-utils):
// a zone signed here, KSK over the DNSKEY RRset and ZSK over the rest, with
// an NSEC chain, passes `dnssec-verify`, for ECDSA P-256 and Ed25519 alike,
// and fails it once one signature octet changes; the DS record matches what
// `dnssec-dsfromkey` computes from the DNSKEY.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAddress } from '../dns/address.js';
import { compactNsec } from './denial.js';
import { ALGORITHM, dnskeyText, dsText, FLAGS, generateSigningKey, type Algorithm, type SigningKey } from './keys.js';
import { DNSSEC_TYPE, nsecRdata, nsRdata, soaRdata, typeBitmap } from './rdata.js';
import { rrsigOf, verifyRrsig, type Rr } from './sign.js';

const hasBind = spawnSync('dnssec-verify', ['-V']).status === 0 && spawnSync('dnssec-dsfromkey', ['-V']).status === 0;
const requireBind = process.env.CI ? true : hasBind;
const ZONE = 'example.com';
const T = { A: 1, NS: 2, SOA: 6, AAAA: 28 };
const TYPE_NAMES: Record<number, string> = { 1: 'A', 2: 'NS', 6: 'SOA', 28: 'AAAA', 46: 'RRSIG', 47: 'NSEC', 48: 'DNSKEY' };

const now = Math.floor(Date.now() / 1000);
const window = { inception: now - 3600, expiration: now + 14 * 86400 };
const stamp = (s: number) => new Date(s * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14);

/** An RRSIG record in zone-file form (what dnssec-verify reads). */
function rrsigText(r: Rr): string {
  const d = r.rdata;
  let end = 18;
  const labels: string[] = [];
  while (d[end] !== 0) {
    labels.push(d.subarray(end + 1, end + 1 + d[end]).toString('latin1'));
    end += d[end] + 1;
  }
  const fields = [TYPE_NAMES[d.readUInt16BE(0)], d[2], d[3], d.readUInt32BE(4), stamp(d.readUInt32BE(8)), stamp(d.readUInt32BE(12)), d.readUInt16BE(16), `${labels.join('.')}.`];
  return `${r.name}. ${r.ttl} IN RRSIG ${fields.join(' ')} ${d.subarray(end + 1).toString('base64')}`;
}

type Set = { rrs: Rr[]; text: string[] };

/** The test zone's RRsets, each with its records' zone-file lines; owner names in mixed case (signing lowercases them). */
function zoneSets(ksk: SigningKey, zsk: SigningKey): Set[] {
  const a = (name: string, ttl: number, ...addrs: string[]): Set => ({ rrs: addrs.map((x) => ({ name, type: parseAddress(x)!.length === 4 ? T.A : T.AAAA, ttl, rdata: Buffer.from(parseAddress(x)!) })), text: addrs.map((x) => `${name}. ${ttl} IN ${x.includes(':') ? 'AAAA' : 'A'} ${x}`) });
  const nsec = (name: string, next: string, types: number[]): Set => ({ rrs: [{ name, type: DNSSEC_TYPE.NSEC, ttl: 300, rdata: nsecRdata(next, types) }], text: [`${name}. 300 IN NSEC ${next}. ${types.map((t) => TYPE_NAMES[t]).join(' ')}`] });
  return [
    { rrs: [{ name: ZONE, type: T.SOA, ttl: 3600, rdata: soaRdata({ mname: 'ns1.example.com', rname: 'hostmaster.example.com', serial: 1, refresh: 7200, retry: 3600, expire: 1209600, minimum: 300 }) }], text: [`${ZONE}. 3600 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 300`] },
    { rrs: [{ name: ZONE, type: T.NS, ttl: 3600, rdata: nsRdata('NS1.Example.com') }], text: [`${ZONE}. 3600 IN NS NS1.Example.com.`] },
    { rrs: [ksk, zsk].map((k) => ({ name: ZONE, type: DNSSEC_TYPE.DNSKEY, ttl: 3600, rdata: k.rdata })), text: [dnskeyText(ZONE, ksk), dnskeyText(ZONE, zsk)] },
    a('Api.Example.COM', 30, '192.0.2.1', '192.0.2.2', '192.0.2.1'),
    a('Api.Example.COM', 30, '2001:db8::1'),
    a('ns1.example.com', 3600, '192.0.2.53'),
    nsec(ZONE, 'api.example.com', [T.NS, T.SOA, DNSSEC_TYPE.RRSIG, DNSSEC_TYPE.NSEC, DNSSEC_TYPE.DNSKEY]),
    nsec('api.example.com', 'ns1.example.com', [T.A, T.AAAA, DNSSEC_TYPE.RRSIG, DNSSEC_TYPE.NSEC]),
    nsec('ns1.example.com', ZONE, [T.A, DNSSEC_TYPE.RRSIG, DNSSEC_TYPE.NSEC]),
  ];
}

/** The zone signed (the KSK over DNSKEY, the ZSK over the rest), as a zone file; `tamper` flips one octet of the A RRset's signature. */
function signedZone(algorithm: Algorithm, tamper = false): { file: string; ksk: SigningKey; sets: Set[] } {
  const ksk = generateSigningKey(algorithm, FLAGS.KSK).key;
  const zsk = generateSigningKey(algorithm, FLAGS.ZSK).key;
  const sets = zoneSets(ksk, zsk);
  // The A RRset holds 192.0.2.1 twice: signed once, as a validator counts it.
  const lines = sets.flatMap((s) => {
    const sig = rrsigOf(s.rrs, s.rrs[0].type === DNSSEC_TYPE.DNSKEY ? ksk : zsk, ZONE, window);
    if (tamper && s.rrs[0].type === T.A && s.rrs.length > 1) sig.rdata[sig.rdata.length - 1] ^= 1;
    return [...new globalThis.Set(s.text), rrsigText(sig)];
  });
  const dir = mkdtempSync(join(tmpdir(), 'arus-dnssec-'));
  const file = join(dir, 'example.com.zone');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return { file, ksk, sets };
}

const verifyZone = (file: string) => spawnSync('dnssec-verify', ['-o', ZONE, file], { encoding: 'utf8' });

describe.skipIf(!requireBind)('signatures BIND accepts', () => {
  for (const [name, algorithm] of [['ECDSA P-256 (13)', ALGORITHM.ECDSAP256SHA256], ['Ed25519 (15)', ALGORITHM.ED25519]] as const) {
    it(`${name}: a zone signed here passes dnssec-verify, and one changed octet fails it`, () => {
      const good = verifyZone(signedZone(algorithm).file);
      expect(good.stderr + good.stdout).toMatch(/Zone fully signed/);
      expect(good.status).toBe(0);
      const bad = verifyZone(signedZone(algorithm, true).file);
      expect(bad.status).not.toBe(0);
    });

    it(`${name}: the DS record is the one dnssec-dsfromkey makes of the DNSKEY`, () => {
      const { file, ksk } = signedZone(algorithm);
      const bind = spawnSync('dnssec-dsfromkey', ['-2', '-f', file, ZONE], { encoding: 'utf8' });
      expect(bind.status).toBe(0);
      const theirs = bind.stdout.split('\n').find((l) => l.includes(` ${ksk.tag} `))!;
      expect(theirs.replace(/\s+/g, ' ').trim()).toBe(dsText(ZONE, ksk).replace(' 3600 ', ' '));
    });
  }
});

describe('signatures', () => {
  it('verify here, over the RRset in any order and case, and fail once expired, not yet valid, or over other data', () => {
    const zsk = generateSigningKey(ALGORITHM.ECDSAP256SHA256, FLAGS.ZSK).key;
    const rrset: Rr[] = ['192.0.2.1', '192.0.2.2'].map((x) => ({ name: 'api.example.com', type: T.A, ttl: 30, rdata: Buffer.from(parseAddress(x)!) }));
    const sig = rrsigOf(rrset, zsk, ZONE, window).rdata;
    expect(verifyRrsig([...rrset].reverse().map((r) => ({ ...r, name: 'API.example.com' })), sig, zsk.rdata, now)).toBe(true);
    expect(verifyRrsig(rrset, sig, zsk.rdata, window.expiration + 1)).toBe(false);
    expect(verifyRrsig(rrset, sig, zsk.rdata, window.inception - 1)).toBe(false);
    expect(verifyRrsig([rrset[0]], sig, zsk.rdata, now)).toBe(false);
  });

  it('refuses to sign what is not one RRset', () => {
    const zsk = generateSigningKey(ALGORITHM.ED25519, FLAGS.ZSK).key;
    expect(() => rrsigOf([], zsk, ZONE, window)).toThrow(/at least one/);
    expect(() => rrsigOf([{ name: 'a.example.com', type: 1, ttl: 30, rdata: Buffer.alloc(4) }, { name: 'b.example.com', type: 1, ttl: 30, rdata: Buffer.alloc(4) }], zsk, ZONE, window)).toThrow(/one owner/);
  });

  it('writes the NSEC type bitmap by windows (RFC 4034 §4.1.2), NXNAME (128) in window 0', () => {
    // A, MX, RRSIG, NSEC and type 1234 (window 4): the RFC's own example.
    expect(typeBitmap([1, 15, 46, 47, 1234]).toString('hex')).toBe('0006400100000003' + '041b' + '00'.repeat(26) + '20');
    const nx = compactNsec('nope.example.com', 300, 'nxname');
    expect(nx.rdata.subarray(nameLength(nx.rdata)).toString('hex')).toBe('0011' + '00'.repeat(5) + '03' + '00'.repeat(10) + '80');
  });
});

function nameLength(b: Buffer): number {
  let i = 0;
  while (b[i] !== 0) i += b[i] + 1;
  return i + 1;
}
