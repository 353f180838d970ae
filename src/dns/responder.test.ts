import { Packet, type EcsOption } from 'dns2';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { buildSnapshot } from '../snapshot/snapshot.js';
import { bigConfig, decodeReply, defaultConfig, ecs, ecsOf, keepalive, nameWire, query, servingState, type QuerySpec } from './fixtures.js';
import type { Remote, Transport } from './replies.js';
import { createResponder } from './responder.js';
import { DECISION_BUCKETS, QTYPE_LABELS } from './responder-stats.js';
import { RCODE } from './wire.js';

const state = servingState(bigConfig(), 42);
const responder = createResponder({ getState: () => state, log: silentLogger() });
const RESOLVER: Remote = { address: '127.0.0.1', family: 'IPv4' };

function ask(spec: QuerySpec, opts: { remote?: Remote; transport?: Transport; r?: typeof responder } = {}) {
  const packet = query(spec);
  const raw = (opts.r ?? responder)(packet, opts.remote ?? RESOLVER, opts.transport ?? 'udp');
  if (!raw) throw new Error('no reply');
  return { raw, packet, msg: Packet.parse(raw) };
}

const addresses = (msg: Packet) => msg.answers.map((a) => a.address).sort();
const ecsReply = (msg: Packet) => msg.additionals.find((r) => r.type === 41)?.rdata?.find((o) => o.ednsCode === 8) as EcsOption | undefined;

const SG4 = ['127.0.1.11', '127.0.1.12'];
const SOA_NEGATIVE_TTL = 60; // min(soa.ttl 3600, soa.minimum 60)

describe('responder: the apex and its name servers', () => {
  it('SOA: serial is the snapshot version, mname the first NS, AA set, RA never, RD copied', () => {
    const { msg } = ask({ name: 'gslb.example.com', type: 6 });
    expect(msg.header).toMatchObject({ qr: 1, aa: 1, ra: 0, rd: 1, tc: 0, rcode: 0 });
    expect(msg.answers).toEqual([
      expect.objectContaining({ type: 6, ttl: 3600, primary: 'ns1.gslb.example.com', admin: 'hostmaster.example.com', serial: 42, refresh: 3600, retry: 600, expiration: 604800, minimum: 60 }),
    ]);
  });

  it('RD clear in the query stays clear', () => {
    expect(ask({ name: 'gslb.example.com', type: 6, flags: 0 }).msg.header.rd).toBe(0);
  });

  it('NS with glue A and AAAA in additional', () => {
    const { msg } = ask({ name: 'gslb.example.com', type: 2 });
    expect(msg.answers.map((a) => [a.ns, a.ttl])).toEqual([
      ['ns1.gslb.example.com', 86400],
      ['ns2.gslb.example.com', 86400],
    ]);
    expect(msg.additionals.map((a) => [a.name, a.address])).toEqual([
      ['ns1.gslb.example.com', '192.0.2.53'],
      ['ns1.gslb.example.com', '2001:db8:53::1'],
      ['ns2.gslb.example.com', '198.51.100.53'],
      ['ns2.gslb.example.com', '2001:db8:53::2'],
    ]);
  });

  it.each([
    ['ns1.gslb.example.com', 1, ['192.0.2.53']],
    ['ns1.gslb.example.com', 28, ['2001:db8:53::1']],
    ['NS2.gslb.example.com', 1, ['198.51.100.53']],
    ['ns2.gslb.example.com', 28, ['2001:db8:53::2']],
  ])('%s type %i → its glue', (name, type, want) => {
    const { msg } = ask({ name, type });
    expect(addresses(msg)).toEqual(want);
    expect(msg.answers[0].ttl).toBe(86400);
  });
});

describe('responder: service names', () => {
  it('A and AAAA for api from a resolver with no location: the default region', () => {
    expect(addresses(ask({ name: 'api.gslb.example.com', type: 1 }).msg)).toEqual(SG4);
    expect(addresses(ask({ name: 'api.gslb.example.com', type: 28 }).msg)).toEqual(['2001:db8:113::11', '2001:db8:113::12']);
    expect(ask({ name: 'api.gslb.example.com' }).msg.answers[0].ttl).toBe(30);
  });

  it.each([
    ['36.66.0.0/24', ['127.0.1.21', '127.0.1.22']],
    ['165.21.0.0/16', SG4],
    ['171.96.0.0/16', ['127.0.1.31', '127.0.1.32']],
    ['112.198.0.0/16', ['127.0.1.41', '127.0.1.42']],
  ])('ECS %s → %j, with the option echoed and a non-zero scope', (cidr, want) => {
    const { msg } = ask({ name: 'api.gslb.example.com', opt: { options: [ecsOf(cidr)] } });
    expect(addresses(msg)).toEqual(want);
    const [ip, len] = cidr.split('/');
    const option = ecsReply(msg)!;
    expect(option).toMatchObject({ family: 1, sourcePrefixLength: Number(len), ip });
    expect(option.scopePrefixLength).toBeGreaterThan(0);
  });

  it('ECS wins over the resolver address: a resolver in Singapore asking for a client in Jakarta', () => {
    const { msg } = ask({ name: 'api.gslb.example.com', opt: { options: [ecsOf('36.66.0.0/24')] } }, { remote: { address: '165.21.1.1' } });
    expect(addresses(msg)).toEqual(['127.0.1.21', '127.0.1.22']);
  });

  it('without ECS the resolver address is located and no ECS option comes back', () => {
    const { msg } = ask({ name: 'api.gslb.example.com', opt: {} }, { remote: { address: '36.66.1.1' } });
    expect(addresses(msg)).toEqual(['127.0.1.21', '127.0.1.22']);
    expect(msg.additionals).toEqual([expect.objectContaining({ type: 41, class: 1232, version: 0 })]);
    expect(ecsReply(msg)).toBeUndefined();
  });

  it('an IPv4-mapped resolver address is the IPv4 client', () => {
    expect(addresses(ask({ name: 'api.gslb.example.com' }, { remote: { address: '::ffff:36.66.1.1' } }).msg)).toEqual(['127.0.1.21', '127.0.1.22']);
  });

  it('ECS source prefix 0: answer by the resolver, scope 0', () => {
    const { msg } = ask({ name: 'api.gslb.example.com', opt: { options: [ecs(1, 0, [])] } }, { remote: { address: '171.96.1.1' } });
    expect(addresses(msg)).toEqual(['127.0.1.31', '127.0.1.32']);
    expect(ecsReply(msg)).toMatchObject({ family: 1, sourcePrefixLength: 0, scopePrefixLength: 0 });
  });

  it('IPv6 ECS is echoed', () => {
    const { msg } = ask({ name: 'api.gslb.example.com', type: 28, opt: { options: [ecsOf('2001:db8:1234::/48')] } });
    expect(msg.answers.length).toBeGreaterThan(0);
    expect(ecsReply(msg)).toMatchObject({ family: 2, sourcePrefixLength: 48, ip: '2001:db8:1234:0:0:0:0:0' });
    // An odd number of address octets: dns2's ECS decoder cannot read it (it reads 16 bits at a time), so check the octets.
    const { raw } = ask({ name: 'api.gslb.example.com', type: 28, opt: { options: [ecsOf('2001:db8:1234:5600::/56')] } });
    const option = raw.subarray(raw.length - 15);
    expect([...option.subarray(0, 6)]).toEqual([0, 8, 0, 11, 0, 2]);
    expect(option[6]).toBe(56);
    expect([...option.subarray(8)]).toEqual([0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56]);
  });

  it('pinned name answers from its region only, whatever the client, with scope 0', () => {
    const { msg } = ask({ name: 'sg.api.gslb.example.com', opt: { options: [ecsOf('36.66.0.0/24')] } });
    expect(addresses(msg)).toEqual(SG4);
    expect(ecsReply(msg)!.scopePrefixLength).toBe(0);
    expect(addresses(ask({ name: 'mnl.api.gslb.example.com', type: 28 }).msg)).toEqual(['2001:db8:113::41', '2001:db8:113::42']);
  });

  it('only the regions a service may use get pinned names', () => {
    const { msg } = ask({ name: 'sg.bulk.gslb.example.com' });
    expect(msg.header.rcode).toBe(RCODE.NXDOMAIN);
    expect(ask({ name: 'hcm.bulk.gslb.example.com' }, { transport: 'tcp' }).msg.answers.length).toBe(32);
  });

  it('rotates the order of a weighted answer between queries', () => {
    const orders = new Set<string>();
    for (let i = 0; i < 40; i++) orders.add(ask({ name: 'api.gslb.example.com' }).msg.answers.map((a) => a.address).join(','));
    expect([...orders].sort()).toEqual(['127.0.1.11,127.0.1.12', '127.0.1.12,127.0.1.11']);
  });
});

describe('responder: negative answers and refusals', () => {
  it.each([
    ['nope.gslb.example.com'],
    ['x.sg.api.gslb.example.com'],
    ['a.b.c.d.e.f.gslb.example.com'],
    ['x.ns1.gslb.example.com'],
    ['GSLB-nope.gslb.example.com'],
  ])('%s → NXDOMAIN with the SOA in authority (negative TTL)', (name) => {
    const { msg } = ask({ name, type: 1 });
    expect(msg.header).toMatchObject({ rcode: RCODE.NXDOMAIN, aa: 1, ancount: 0, nscount: 1 });
    expect(msg.authorities).toEqual([expect.objectContaining({ name: 'gslb.example.com', type: 6, ttl: SOA_NEGATIVE_TTL, serial: 42, primary: 'ns1.gslb.example.com', admin: 'hostmaster.example.com' })]);
  });

  it('NXDOMAIN bodies are right for every length of name in front of the apex', () => {
    for (let len = 1; len <= 200; len++) {
      const labels: string[] = [];
      for (let left = len; left > 0; left -= 31) labels.push('q'.repeat(Math.min(30, left)));
      const { msg } = ask({ name: `${labels.join('.')}.gslb.example.com`, type: 1 });
      expect(msg.errors).toEqual([]);
      expect(msg.authorities[0]).toMatchObject({ name: 'gslb.example.com', primary: 'ns1.gslb.example.com', admin: 'hostmaster.example.com' });
    }
  });

  it.each([
    ['api.gslb.example.com', 16],
    ['api.gslb.example.com', 15],
    ['sg.api.gslb.example.com', 16],
    ['gslb.example.com', 1],
    ['gslb.example.com', 28],
    ['ns1.gslb.example.com', 2],
  ])('%s type %i → NODATA with the SOA', (name, type) => {
    const { msg } = ask({ name, type });
    expect(msg.header).toMatchObject({ rcode: 0, aa: 1, ancount: 0, nscount: 1 });
    expect(msg.authorities[0]).toMatchObject({ type: 6, ttl: SOA_NEGATIVE_TTL });
  });

  it.each([['example.org'], ['example.com'], ['com'], ['xgslb.example.com'], ['gslb.example.com.evil']])('%s → REFUSED without AA', (name) => {
    const { msg } = ask({ name });
    expect(msg.header).toMatchObject({ rcode: RCODE.REFUSED, aa: 0, qdcount: 1, ancount: 0 });
  });

  it('a label that hides the apex inside it is outside the zone', () => {
    // One label: "x\x04gslb\x07example\x03com", whose tail looks like the apex in wire form.
    const inner = [...'x'].map((c) => c.charCodeAt(0)).concat(nameWire('gslb.example.com').slice(0, -1));
    const { msg } = ask({ rawName: [inner.length, ...inner, 0] });
    expect(msg.header.rcode).toBe(RCODE.REFUSED);
  });

  it('CHAOS class and zone transfers are refused', () => {
    expect(ask({ name: 'version.bind', type: 16, qclass: 3 }).msg.header.rcode).toBe(RCODE.REFUSED);
    expect(ask({ name: 'gslb.example.com', type: 252 }).msg.header.rcode).toBe(RCODE.REFUSED);
  });

  it('ANY gets the RFC 8482 HINFO', () => {
    const { msg } = ask({ name: 'api.gslb.example.com', type: 255 });
    expect(msg.answers).toEqual([expect.objectContaining({ type: 13, name: 'api.gslb.example.com' })]);
    expect((msg.answers[0].data as Buffer).toString('latin1')).toBe('\x07RFC8482\x00');
  });
});

describe('responder: amplification', () => {
  // Each reply against the query that asked for it: the size, and the records it carries.
  it.each<[string, QuerySpec, { max: number; records: [number, number, number] }]>([
    ['ANY: one HINFO (RFC 8482), not every record', { name: 'gslb.example.com', type: 255 }, { max: 80, records: [1, 0, 0] }],
    ['A for a service: the answers only (no NS, no SOA)', { name: 'api.gslb.example.com' }, { max: 80, records: [2, 0, 0] }],
    ['out of zone: REFUSED, the question only', { name: 'example.org', type: 255 }, { max: 29, records: [0, 0, 0] }],
    ['out of zone with ECS: the question and the OPT echoed', { name: 'example.org', opt: { options: [ecsOf('36.66.0.0/24')] } }, { max: 55, records: [0, 0, 1] }],
    ['NXDOMAIN: the SOA only', { name: 'nope.gslb.example.com' }, { max: 120, records: [0, 1, 0] }],
    ['no EDNS, a long answer: TC, at most 512', { name: 'bulk.gslb.example.com', type: 28 }, { max: 512, records: [0, 0, 0] }],
    ['EDNS 65535, a long answer: at most our 1232', { name: 'bulk.gslb.example.com', type: 28, opt: { size: 65535 } }, { max: 1232, records: [32, 0, 1] }],
  ])('%s', (_, spec, want) => {
    const { raw, msg } = ask(spec);
    expect(raw.length).toBeLessThanOrEqual(want.max);
    expect([msg.header.ancount, msg.header.nscount, msg.header.arcount]).toEqual(want.records);
  });
});

describe('responder: the wire', () => {
  it('echoes the question exactly as asked (0x20 case)', () => {
    const { raw, packet, msg } = ask({ name: 'aPi.GsLb.ExAmPlE.cOm', type: 1 });
    const qEnd = 12 + 22 + 4;
    expect(raw.subarray(12, qEnd)).toEqual(packet.subarray(12, qEnd));
    expect(msg.answers[0].name).toBe('aPi.GsLb.ExAmPlE.cOm');
    expect(addresses(msg)).toEqual(SG4);
  });

  it('echoes OPT with our payload size and the DO bit; no OPT without one', () => {
    const { msg } = ask({ name: 'gslb.example.com', type: 6, opt: { size: 4096, dnssecOk: true } });
    expect(msg.additionals).toEqual([expect.objectContaining({ type: 41, class: 1232, doFlag: true, version: 0 })]);
    expect(ask({ name: 'gslb.example.com', type: 6 }).msg.additionals).toEqual([]);
  });

  it('sets TC, with no records, when the reply does not fit the UDP size; TCP has room', () => {
    const small = ask({ name: 'bulk.gslb.example.com', type: 28, opt: { size: 512 } });
    expect(small.msg.header).toMatchObject({ tc: 1, ancount: 0, arcount: 1 });
    expect(small.raw.length).toBeLessThanOrEqual(512);
    const noEdns = ask({ name: 'bulk.gslb.example.com', type: 1 });
    expect(noEdns.msg.header.tc).toBe(1);
    const big = ask({ name: 'bulk.gslb.example.com', type: 28, opt: { size: 4096 } });
    expect(big.msg.header.tc).toBe(0); // 896 octets of answers fit our 1232
    const tcp = ask({ name: 'bulk.gslb.example.com', type: 28, opt: { size: 512 } }, { transport: 'tcp' });
    expect(tcp.msg.header.tc).toBe(0);
    expect(tcp.msg.answers.length).toBe(32);
    expect(responder.stats.truncated).toBeGreaterThanOrEqual(2);
  });

  it.each([
    ['FORMERR', query({ tail: [0] }), RCODE.FORMERR],
    ['NOTIMP', query({ flags: 4 << 11 }), RCODE.NOTIMP],
    ['BADVERS', query({ opt: { version: 3 } }), RCODE.BADVERS],
  ])('%s', (_, packet, rcode) => {
    const msg = Packet.parse(responder(packet, RESOLVER, 'udp')!);
    expect(msg.header.rcode).toBe(rcode);
    expect(msg.header.id).toBe(0x1234);
  });

  it('EDNS keepalive over TCP: the idle timeout given, in 100 ms units (at most 65535); never over UDP, never unasked', () => {
    const spec = { name: 'gslb.example.com', type: 6, opt: { options: [keepalive()] } };
    const timeout = (raw: Buffer | undefined) => {
      const o = decodeReply(raw!).opt!.options.find((x) => x.code === 11);
      return o && (o.data[0] << 8) | o.data[1];
    };
    expect(timeout(responder(query(spec), RESOLVER, 'tcp', 2550))).toBe(25);
    expect(timeout(responder(query(spec), RESOLVER, 'tcp', 3_600_000_000))).toBe(65535);
    expect(timeout(responder(query(spec), RESOLVER, 'udp', 2550))).toBeUndefined();
    expect(timeout(responder(query({ ...spec, opt: {} }), RESOLVER, 'tcp', 2550))).toBeUndefined();
    // A TIMEOUT from a client: FORMERR over TCP, ignored over UDP.
    const bad = { ...spec, opt: { options: [keepalive(10)] } };
    expect(decodeReply(responder(query(bad), RESOLVER, 'tcp', 2550)!).rcode).toBe(RCODE.FORMERR);
    expect(decodeReply(responder(query(bad), RESOLVER, 'udp')!).rcode).toBe(RCODE.NOERROR);
  });

  it('drops what is not a query', () => {
    expect(responder(Buffer.from([1, 2, 3]), RESOLVER, 'udp')).toBeUndefined();
    expect(responder(query({ flags: 0x8400 }), RESOLVER, 'udp')).toBeUndefined();
  });
});

describe('responder: state and failures', () => {
  it('recompiles when the snapshot changes: new serial, caches dropped', () => {
    let current = servingState(defaultConfig(), 1);
    const r = createResponder({ getState: () => current, log: silentLogger() });
    expect(ask({ name: 'gslb.example.com', type: 6 }, { r }).msg.answers[0].serial).toBe(1);
    ask({ name: 'api.gslb.example.com' }, { r });
    const calls = r.stats.steerCalls;
    ask({ name: 'api.gslb.example.com' }, { r });
    expect(r.stats.steerCalls).toBe(calls);
    current = { ...current, snapshot: buildSnapshot(defaultConfig(), 2) };
    expect(ask({ name: 'gslb.example.com', type: 6 }, { r }).msg.answers[0].serial).toBe(2);
    ask({ name: 'api.gslb.example.com' }, { r });
    expect(r.stats.steerCalls).toBeGreaterThan(calls);
    expect(r.stats.compiles).toBe(2);
  });

  it('accepts getSnapshot and a fixed locator', () => {
    const s = servingState(defaultConfig(), 9);
    const r = createResponder({ getSnapshot: () => s.snapshot, locator: s.locator, log: silentLogger() });
    expect(ask({ name: 'gslb.example.com', type: 6 }, { r }).msg.answers[0].serial).toBe(9);
    expect(r.stats.compiles).toBe(1);
    ask({ name: 'gslb.example.com', type: 6 }, { r });
    expect(r.stats.compiles).toBe(1);
  });

  it('a failing locator gives SERVFAIL and is counted, not thrown', () => {
    const s = servingState(defaultConfig());
    const r = createResponder({
      getSnapshot: () => s.snapshot,
      locator: {
        locate() {
          throw new Error('boom');
        },
      },
      log: silentLogger(),
    });
    expect(ask({ name: 'api.gslb.example.com' }, { r }).msg.header.rcode).toBe(RCODE.SERVFAIL);
    expect(ask({ name: 'gslb.example.com', type: 6 }, { r }).msg.header.rcode).toBe(0);
    expect(r.stats.errors).toBe(1);
  });

  it('never throws on mangled input', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const seeds = [
      query({ name: 'api.gslb.example.com', opt: { options: [ecsOf('36.66.0.0/24')] } }),
      query({ name: 'gslb.example.com', type: 2 }),
      query({ name: 'nope.gslb.example.com', opt: {} }),
    ];
    for (let i = 0; i < 20_000; i++) {
      const base = Buffer.from(seeds[i % seeds.length]);
      const packet = rand() < 0.1 ? base.subarray(0, Math.floor(rand() * base.length)) : base;
      for (let k = 0, n = 1 + Math.floor(rand() * 4); k < n; k++) packet[Math.floor(rand() * packet.length)] = Math.floor(rand() * 256);
      const out = responder(packet, RESOLVER, rand() < 0.5 ? 'udp' : 'tcp');
      if (out) expect(() => Packet.parse(out)).not.toThrow();
    }
  });
});

describe('responder: counters for metrics', () => {
  const fresh = (config = defaultConfig()) => {
    const s = servingState(config, 1);
    return createResponder({ getState: () => s, log: silentLogger() });
  };
  const byType = (r: ReturnType<typeof fresh>) => Object.fromEntries(QTYPE_LABELS.map((l, i) => [l, r.stats.byType[i]]));
  const byRegion = (r: ReturnType<typeof fresh>) => Object.fromEntries(r.stats.answerRegions.map((id, i) => [id, r.stats.answersByRegion[i]]));

  it('counts queries by QTYPE: A, AAAA, NS, SOA, ANY, the static records\' types and the rest as other; unreadable questions not at all', () => {
    const r = fresh();
    for (const [type, times] of [[1, 3], [28, 2], [2, 1], [6, 4], [255, 1], [16, 2], [15, 1], [257, 2], [5, 1], [33, 1], [65, 1], [0x8001, 1], [252, 1]])
      for (let i = 0; i < times; i++) ask({ name: 'gslb.example.com', type }, { r });
    ask({ name: 'example.org', type: 1 }, { r }); // REFUSED, but its question was read
    r(query({ tail: [0] }), RESOLVER, 'udp'); // FORMERR
    r(query({ opt: { version: 3 } }), RESOLVER, 'udp'); // BADVERS
    r(Buffer.from([1, 2, 3]), RESOLVER, 'udp'); // dropped
    expect(byType(r)).toEqual({ A: 4, AAAA: 2, NS: 1, SOA: 4, ANY: 1, CNAME: 1, MX: 1, TXT: 2, SRV: 1, CAA: 2, other: 3 });
    expect(r.stats.queries).toBe(25);
    expect(r.stats).toMatchObject({ refused: 2, formerr: 1, badvers: 1, dropped: 1 });
  });

  it('counts A and AAAA answers by the region that served them, every region listed from the first query', () => {
    const r = fresh();
    ask({ name: 'gslb.example.com', type: 6 }, { r });
    expect(byRegion(r)).toEqual({ sg: 0, jkt: 0, bkk: 0, mnl: 0 });
    for (let i = 0; i < 3; i++) ask({ name: 'api.gslb.example.com', opt: { options: [ecsOf('36.66.0.0/24')] } }, { r });
    ask({ name: 'api.gslb.example.com', type: 28, opt: { options: [ecsOf('36.66.0.0/24')] } }, { r });
    ask({ name: 'api.gslb.example.com', opt: { options: [ecsOf('171.96.0.0/16')] } }, { r });
    ask({ name: 'mnl.api.gslb.example.com', opt: { options: [ecsOf('36.66.0.0/24')] } }, { r });
    ask({ name: 'api.gslb.example.com', type: 16 }, { r }); // NODATA from the zone: not an answer from steer()
    ask({ name: 'api.gslb.example.com' }, { r }); // the resolver's address: no location, the default region
    expect(byRegion(r)).toEqual({ sg: 1, jkt: 4, bkk: 1, mnl: 1 });
    expect(r.stats.emptyAnswers).toBe(0);
  });

  it('counts answers with no address (every region down, fail closed) apart', () => {
    const config = defaultConfig();
    const r = fresh({
      zone: { ...config.zone, services: config.zone.services.map((s) => ({ ...s, failMode: 'closed' as const })) },
      regions: config.regions.map((region) => ({ ...region, down: true })),
    });
    const { msg } = ask({ name: 'api.gslb.example.com', opt: { options: [ecsOf('36.66.0.0/24')] } }, { r });
    expect(msg.header).toMatchObject({ rcode: 0, ancount: 0 });
    ask({ name: 'api.gslb.example.com', opt: { options: [ecsOf('36.66.0.0/24')] } }, { r });
    expect(r.stats.emptyAnswers).toBe(2);
    expect(r.stats.answersByRegion).toEqual([0, 0, 0, 0]);
  });

  it('times every steer() call, and only those: the histogram counts add up to steerCalls', () => {
    const r = fresh();
    expect(r.stats.decisionBuckets).toHaveLength(DECISION_BUCKETS.length + 1);
    ask({ name: 'api.gslb.example.com', opt: { options: [ecsOf('36.66.0.0/24')] } }, { r });
    ask({ name: 'api.gslb.example.com', type: 28, opt: { options: [ecsOf('112.198.0.0/16')] } }, { r });
    const calls = r.stats.steerCalls;
    expect(calls).toBeGreaterThan(2);
    const total = () => r.stats.decisionBuckets.reduce((a, b) => a + b, 0);
    expect(total()).toBe(calls);
    expect(r.stats.decisionSeconds).toBeGreaterThan(0);
    expect(r.stats.decisionSeconds).toBeLessThan(calls); // seconds, not milliseconds: each call well under one
    const seconds = r.stats.decisionSeconds;
    for (let i = 0; i < 50; i++) ask({ name: 'api.gslb.example.com', opt: { options: [ecsOf('36.66.0.0/24')] } }, { r }); // cached
    expect(total()).toBe(calls);
    expect(r.stats.decisionSeconds).toBe(seconds);
  });

  it('keeps counting by region across snapshots, with the same indexes', () => {
    let current = servingState(defaultConfig(), 1);
    const r = createResponder({ getState: () => current, log: silentLogger() });
    ask({ name: 'api.gslb.example.com', opt: { options: [ecsOf('36.66.0.0/24')] } }, { r });
    const regions = [...r.stats.answerRegions];
    current = servingState(bigConfig(), 2);
    ask({ name: 'api.gslb.example.com', opt: { options: [ecsOf('36.66.0.0/24')] } }, { r });
    ask({ name: 'bulk.gslb.example.com' }, { r, transport: 'tcp' });
    expect(r.stats.answerRegions).toEqual([...regions, 'hcm']);
    expect(byRegion(r)).toMatchObject({ jkt: 2, hcm: 1 });
  });
});
