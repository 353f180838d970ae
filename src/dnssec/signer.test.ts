import { describe, expect, it } from 'vitest';
import { ALGORITHM, FLAGS, generateSigningKey } from './keys.js';
import { DNSSEC_TYPE } from './rdata.js';
import { verifyRrsig, type Rr } from './sign.js';
import { createSigner, SIGNER_DEFAULTS } from './signer.js';

const ksk = generateSigningKey(ALGORITHM.ECDSAP256SHA256, FLAGS.KSK).key;
const zsk = generateSigningKey(ALGORITHM.ECDSAP256SHA256, FLAGS.ZSK).key;
const next = generateSigningKey(ALGORITHM.ECDSAP256SHA256, FLAGS.ZSK).key;
const T0 = Date.UTC(2026, 11, 7, 12, 30);
const a = (name: string, ttl: number, ...octets: number[]): Rr[] => octets.map((o) => ({ name, type: 1, ttl, rdata: Buffer.from([192, 0, 2, o]) }));
const fields = (rrsig: Rr) => ({ tag: rrsig.rdata.readUInt16BE(16), originalTtl: rrsig.rdata.readUInt32BE(4), expiration: rrsig.rdata.readUInt32BE(8), inception: rrsig.rdata.readUInt32BE(12) });

describe('the zone signer', () => {
  it('signs each distinct RRset once: the same records in any order or case reuse the signature', () => {
    const s = createSigner({ zone: 'gslb.example.com', key: zsk, now: () => T0 });
    const first = s.sign(a('api.gslb.example.com', 30, 1, 2));
    const again = s.sign([...a('API.gslb.example.com', 30, 1, 2)].reverse());
    expect(again.rdata).toBe(first.rdata);
    s.sign(a('api.gslb.example.com', 30, 1, 3));
    expect(s.stats()).toEqual({ signed: 2, reused: 1, entries: 2 });
    expect(verifyRrsig(a('api.gslb.example.com', 30, 2, 1), first.rdata, zsk.rdata, T0 / 1000)).toBe(true);
  });

  it('signs with its one key: a KSK signer over the DNSKEY RRset, a ZSK signer over answers', () => {
    const dnskeys: Rr[] = [ksk, zsk, next].map((k) => ({ name: 'gslb.example.com', type: DNSSEC_TYPE.DNSKEY, ttl: 3600, rdata: k.rdata }));
    const overKeys = createSigner({ zone: 'gslb.example.com', key: ksk, now: () => T0 }).sign(dnskeys);
    expect(fields(overKeys).tag).toBe(ksk.tag);
    expect(verifyRrsig(dnskeys, overKeys.rdata, ksk.rdata, T0 / 1000)).toBe(true);
    expect(verifyRrsig(dnskeys, overKeys.rdata, zsk.rdata, T0 / 1000)).toBe(false);
    expect(fields(createSigner({ zone: 'gslb.example.com', key: zsk, now: () => T0 }).sign(a('api.gslb.example.com', 30, 1))).tag).toBe(zsk.tag);
  });

  it('serves a lower TTL than it signs: the RRSIG carries the original TTL and still validates', () => {
    const s = createSigner({ zone: 'gslb.example.com', key: zsk, now: () => T0 });
    const served = a('api.gslb.example.com', 5, 1);
    const sig = s.sign(served, 30);
    expect(sig.ttl).toBe(5);
    expect(fields(sig).originalTtl).toBe(30);
    expect(verifyRrsig(served, sig.rdata, zsk.rdata, T0 / 1000)).toBe(true);
  });

  it('back-dates inception by the skew (rounded to the hour), and signs again once less than the refresh margin is left', () => {
    let now = T0;
    const s = createSigner({ zone: 'gslb.example.com', key: zsk, now: () => now });
    const f = fields(s.sign(a('api.gslb.example.com', 30, 1)));
    expect(f.inception).toBe(Math.floor((T0 / 1000 - 3600) / 3600) * 3600);
    expect(f.expiration - f.inception).toBe(SIGNER_DEFAULTS.validity);
    now = (f.expiration - SIGNER_DEFAULTS.refresh - 60) * 1000;
    expect(fields(s.sign(a('api.gslb.example.com', 30, 1))).inception).toBe(f.inception);
    now = (f.expiration - SIGNER_DEFAULTS.refresh + 60) * 1000;
    const renewed = fields(s.sign(a('api.gslb.example.com', 30, 1)));
    expect(renewed.inception).toBeGreaterThan(f.inception);
    expect(s.stats().signed).toBe(2);
  });

  it('keeps at most maxEntries signatures, the least recently used going first', () => {
    const s = createSigner({ zone: 'gslb.example.com', key: zsk, maxEntries: 3, now: () => T0 });
    for (const o of [1, 2, 3]) s.sign(a('api.gslb.example.com', 30, o));
    s.sign(a('api.gslb.example.com', 30, 1)); // used again: 2 is now the oldest
    s.sign(a('api.gslb.example.com', 30, 4));
    expect(s.stats().entries).toBe(3);
    s.sign(a('api.gslb.example.com', 30, 1));
    expect(s.stats()).toMatchObject({ signed: 4, reused: 2 });
    s.sign(a('api.gslb.example.com', 30, 2));
    expect(s.stats().signed).toBe(5);
  });

  it('refuses settings that would let a signature expire before it is made again', () => {
    expect(() => createSigner({ zone: 'z', key: zsk, validity: 3600, refresh: 7200 })).toThrow(/refresh < validity/);
  });
});
