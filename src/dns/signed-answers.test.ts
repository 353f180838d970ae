// What makes signed answers cheap: signatures outlive snapshots (a health
// change re-encodes every answer, and re-signs none), and names signed per
// query (a flood of random names) cannot push the zone's own signatures out.
// ECDSA signatures are randomized, so the same octets mean the same signature
// reused, not one made again.
import { Packet } from 'dns2';
import { describe, expect, it } from 'vitest';
import { ALGORITHM, FLAGS, generateSigningKey } from '../dnssec/keys.js';
import { DNSSEC_TYPE } from '../dnssec/rdata.js';
import { verifyRrsig } from '../dnssec/sign.js';
import { createLocator } from '../geo/locator.js';
import { silentLogger } from '../log.js';
import { buildSnapshot, type ZoneSigning } from '../snapshot/snapshot.js';
import { defaultConfig, ecsOf, query } from './fixtures.js';
import { createResponder } from './responder.js';

const config = defaultConfig();
const zsk = generateSigningKey(ALGORITHM.ECDSAP256SHA256, FLAGS.ZSK).key;
const signing: ZoneSigning = { keyRrsets: [{ type: DNSSEC_TYPE.DNSKEY, ttl: 3600, rdata: [zsk.rdata], rrsigs: [] }], zsk };
const state = (version: number) => ({ snapshot: buildSnapshot(config, version, { dnssec: signing }), locator: createLocator({ nets: config.zone.nets }) });
const REMOTE = { address: '127.0.0.1' };

/** Each RRSIG of a reply: what it covers and its signature, base64. */
function rrsigs(reply: Buffer): { covered: number; name: string; signature: string }[] {
  const p = Packet.parse(reply);
  return [...p.answers, ...p.authorities]
    .filter((r) => r.type === DNSSEC_TYPE.RRSIG)
    .map((r) => ({ covered: (r as unknown as { sigType: number }).sigType, name: r.name, signature: (r as unknown as { signature: string }).signature }));
}

/** The answer section's records, TYPE and RDATA as on the wire. */
function answerRdata(reply: Buffer): { type: number; rdata: Buffer }[] {
  const skipName = (p: number) => {
    while (reply[p] !== 0 && reply[p] < 0xc0) p += reply[p] + 1;
    return reply[p] === 0 ? p + 1 : p + 2;
  };
  let p = skipName(12) + 4;
  const out: { type: number; rdata: Buffer }[] = [];
  for (let i = 0; i < reply.readUInt16BE(6); i++) {
    p = skipName(p);
    const len = reply.readUInt16BE(p + 8);
    out.push({ type: reply.readUInt16BE(p), rdata: reply.subarray(p + 10, p + 10 + len) });
    p += 10 + len;
  }
  return out;
}

describe('signed answers', () => {
  it('signs each RRset once: a new snapshot (a health change) answers with the same signatures', () => {
    let current = state(1);
    const respond = createResponder({ getState: () => current, log: silentLogger() });
    const ask = (name: string, type = 1) => respond(query({ name, type, opt: { dnssecOk: true, options: [ecsOf('36.66.0.0/24')] } }), REMOTE, 'udp')!;
    const before = [ask('api.gslb.example.com'), ask('gslb.example.com', 6), ask('api.gslb.example.com', 16)].map(rrsigs);
    expect(before.map((s) => s.length)).toEqual([1, 1, 2]);
    current = state(2);
    const after = [ask('api.gslb.example.com'), ask('gslb.example.com', 6), ask('api.gslb.example.com', 16)].map(rrsigs);
    // The SOA's serial is the version: that one RRset is new, and signed anew; the others are not.
    expect(after[0]).toEqual(before[0]);
    expect(after[1][0].signature).not.toBe(before[1][0].signature);
    expect(after[2].find((s) => s.covered === DNSSEC_TYPE.NSEC)).toEqual(before[2].find((s) => s.covered === DNSSEC_TYPE.NSEC));
  });

  it('keeps the zone\'s signatures through a flood of random names, each denied with a signature of its own', { timeout: 60_000 }, () => {
    let current = state(3);
    const respond = createResponder({ getState: () => current, log: silentLogger(), rrl: { enabled: false } });
    const ask = (name: string) => respond(query({ name, type: 1, opt: { dnssecOk: true, options: [ecsOf('165.21.42.0/24')] } }), REMOTE, 'udp')!;
    const steered = rrsigs(ask('api.gslb.example.com'));
    const denials = new Set<string>();
    // More names than the zone's signer keeps (65,536): were they signed by it, the steered answer's signature would be gone.
    const flood = 70_000;
    for (let i = 0; i < flood; i++) {
      const reply = ask(`n${i}.gslb.example.com`);
      const nsec = rrsigs(reply).find((s) => s.covered === DNSSEC_TYPE.NSEC)!;
      denials.add(nsec.signature);
      if (i === 0) {
        // The compact NSEC at the name, its signature by the ZSK.
        const p = Packet.parse(reply);
        const sig = p.authorities.find((r) => r.type === DNSSEC_TYPE.RRSIG && (r as unknown as { sigType: number }).sigType === DNSSEC_TYPE.NSEC)!;
        expect(sig.name).toBe('n0.gslb.example.com');
      }
    }
    expect(denials.size).toBe(flood);
    current = state(4);
    expect(rrsigs(ask('api.gslb.example.com'))).toEqual(steered);
  });

  it('signs what it serves: the steered RRset verifies with the ZSK, at the service TTL', () => {
    const respond = createResponder({ getState: () => state(5), log: silentLogger() });
    const reply = respond(query({ name: 'api.gslb.example.com', type: 1, opt: { dnssecOk: true, options: [ecsOf('171.96.7.0/24')] } }), REMOTE, 'udp')!;
    const p = Packet.parse(reply);
    const a = p.answers.filter((r) => r.type === 1).map((r) => ({ name: r.name, type: 1, ttl: r.ttl, rdata: Buffer.from((r as unknown as { address: string }).address.split('.').map(Number)) }));
    const rrsigRdata = answerRdata(reply).find((r) => r.type === DNSSEC_TYPE.RRSIG)!.rdata;
    expect(verifyRrsig(a, rrsigRdata, zsk.rdata)).toBe(true);
    expect(rrsigRdata.readUInt32BE(4)).toBe(30);
  });

  it('rate-limits a compact denial as the NXDOMAIN it stands for, though its rcode is NOERROR', () => {
    const respond = createResponder({ getState: () => state(6), log: silentLogger(), rrl: { exempt: [], nxdomainsPerSecond: 5, responsesPerSecond: 1000, slip: 0 }, now: () => 1000 });
    const ask = (name: string) => respond(query({ name, type: 1, opt: { dnssecOk: true } }), { address: '192.0.2.7' }, 'udp');
    const denied = Array.from({ length: 40 }, (_, i) => ask(`gone${i}.gslb.example.com`));
    expect(denied.filter((r) => r !== undefined).length).toBeLessThanOrEqual(6);
    expect(respond.stats.rrlDropped).toBeGreaterThan(30);
    // Answers have their own, larger budget.
    expect(Array.from({ length: 40 }, () => ask('api.gslb.example.com')).every((r) => r !== undefined)).toBe(true);
  });
});
