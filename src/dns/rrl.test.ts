import { describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { bigConfig, query, servingState } from './fixtures.js';
import { createResponder } from './responder.js';
import { ipv4 } from './rrl-networks.js';
import { createRateLimiter, KIND, RRL_DEFAULTS, VERDICT, type RrlSettings } from './rrl.js';

// The tests count at 20 answers a second (the default is 100: see the schema) and the default NXDOMAIN and error rates (20).
const settings = (s: Partial<RrlSettings> = {}): RrlSettings => ({ ...RRL_DEFAULTS, exempt: [], responsesPerSecond: 20, ...s });

/** Verdicts for `n` replies of one kind to one address at one instant. */
function burst(check: (a: string, k: number, t: number) => number, address: string, n: number, at = 0, kind: number = KIND.ANSWER) {
  const out = { sent: 0, slipped: 0, dropped: 0 };
  for (let i = 0; i < n; i++) {
    const v = check(address, kind, at);
    if (v === VERDICT.SEND) out.sent++;
    else if (v === VERDICT.SLIP) out.slipped++;
    else out.dropped++;
  }
  return out;
}

describe('rrl: token buckets', () => {
  it('a burst of 200 from one client: 20 sent, then every 2nd slipped, the rest dropped', () => {
    const rrl = createRateLimiter(settings());
    expect(burst(rrl.check, '192.0.2.1', 200)).toEqual({ sent: 20, slipped: 90, dropped: 90 });
    expect(rrl.stats).toMatchObject({ slipped: 90, dropped: 90 });
  });

  it('refills at the rate: 20 more a second later, 10 after half a second', () => {
    const rrl = createRateLimiter(settings());
    burst(rrl.check, '192.0.2.1', 50, 0);
    expect(burst(rrl.check, '192.0.2.1', 50, 500).sent).toBe(10);
    expect(burst(rrl.check, '192.0.2.1', 50, 1500).sent).toBe(20);
    // Never more than one second's worth, however long idle.
    expect(burst(rrl.check, '192.0.2.1', 50, 60_000).sent).toBe(20);
  });

  it('the bucket is the /24 (IPv4) or /56 (IPv6): neighbours share it, the next network does not', () => {
    const rrl = createRateLimiter(settings());
    expect(burst(rrl.check, '192.0.2.1', 15).sent).toBe(15);
    expect(burst(rrl.check, '192.0.2.200', 15).sent).toBe(5);
    expect(burst(rrl.check, '192.0.3.1', 15).sent).toBe(15);
    expect(burst(rrl.check, '::ffff:192.0.2.9', 5).sent).toBe(0);
    expect(burst(rrl.check, '2001:db8:1:100::1', 15).sent).toBe(15);
    expect(burst(rrl.check, '2001:db8:1:1ff::2', 15).sent).toBe(5);
    expect(burst(rrl.check, '2001:db8:1:200::1', 15).sent).toBe(15);
  });

  it('answers, NXDOMAIN and errors have separate buckets and rates', () => {
    const rrl = createRateLimiter(settings({ nxdomainsPerSecond: 5, errorsPerSecond: 2 }));
    expect(burst(rrl.check, '192.0.2.1', 30, 0, KIND.ANSWER).sent).toBe(20);
    expect(burst(rrl.check, '192.0.2.1', 30, 0, KIND.NXDOMAIN).sent).toBe(5);
    expect(burst(rrl.check, '192.0.2.1', 30, 0, KIND.ERROR).sent).toBe(2);
  });

  it.each([
    [0, { sent: 20, slipped: 0, dropped: 180 }],
    [1, { sent: 20, slipped: 180, dropped: 0 }],
    [3, { sent: 20, slipped: 60, dropped: 120 }],
  ])('slip %i', (slip, want) => {
    expect(burst(createRateLimiter(settings({ slip })).check, '192.0.2.1', 200)).toEqual(want);
  });

  it('exempt networks are never limited; loopback is exempt by default', () => {
    const rrl = createRateLimiter(settings({ exempt: ['198.51.100.0/24', '2001:db8:5::/48'] }));
    expect(burst(rrl.check, '198.51.100.7', 100).sent).toBe(100);
    expect(burst(rrl.check, '2001:db8:5:ff::1', 100).sent).toBe(100);
    expect(burst(rrl.check, '198.51.101.7', 100).sent).toBe(20);
    const byDefault = createRateLimiter();
    expect(burst(byDefault.check, '127.0.0.1', 100).sent).toBe(100);
    expect(burst(byDefault.check, '::1', 100).sent).toBe(100);
    expect(byDefault.size()).toBe(0);
  });

  it('the table stays bounded under a flood from many networks: idle buckets go first, then the oldest', () => {
    const rrl = createRateLimiter(settings({ maxTableSize: 1000 }));
    for (let i = 0; i < 50_000; i++) rrl.check(`10.${(i >> 8) & 0xff}.${i & 0xff}.1`, KIND.ANSWER, i / 100);
    expect(rrl.size()).toBeLessThanOrEqual(1000);
    expect(rrl.stats.evicted).toBeGreaterThan(0);
    // A limited network that keeps sending is not forgotten while idle ones are available.
    const busy = createRateLimiter(settings({ maxTableSize: 100 }));
    burst(busy.check, '192.0.2.1', 30, 0);
    for (let i = 0; i < 99; i++) busy.check(`10.0.${i}.1`, KIND.ANSWER, 0);
    expect(burst(busy.check, '192.0.2.1', 1, 10).sent).toBe(0);
    for (let i = 0; i < 500; i++) busy.check(`10.1.${i & 0xff}.${i >> 8}`, KIND.ANSWER, 2000 + i);
    expect(busy.size()).toBeLessThanOrEqual(100);
  });

  it('keeps buckets across settings changes, unless the prefix lengths change', () => {
    const rrl = createRateLimiter(settings());
    burst(rrl.check, '192.0.2.1', 30);
    rrl.configure(settings({ slip: 1 }));
    expect(burst(rrl.check, '192.0.2.1', 1).sent).toBe(0);
    rrl.configure(settings({ ipv4PrefixLength: 32 }));
    expect(burst(rrl.check, '192.0.2.1', 1).sent).toBe(1);
  });

  it.each([
    ['1.2.3.4', 0x01020304],
    ['255.255.255.255', 0xffffffff],
    ['::ffff:10.0.0.1', 0x0a000001],
    ['::FFFF:10.0.0.1', 0x0a000001],
    ['::1', -1],
    ['1.2.3', -1],
    ['1.2.3.256', -1],
    ['1..2.3', -1],
    ['', -1],
    ['2001:db8::1', -1],
  ])('ipv4(%s) = %i', (text, want) => expect(ipv4(text)).toBe(want));
});

describe('rrl in the responder', () => {
  const state = servingState(bigConfig(), 1);
  const client = { address: '192.0.2.1' };
  let clock = 0;
  const make = (rrl?: Partial<RrlSettings>) => createResponder({ getState: () => state, log: silentLogger(), now: () => clock, rrl: { exempt: [], responsesPerSecond: 20, ...rrl } });

  it('UDP: a burst is answered 20 times in full, then slipped (TC, the question, no records) or dropped', () => {
    const r = make();
    const ask = query({ name: 'api.gslb.example.com', opt: {} });
    const replies = Array.from({ length: 200 }, () => r(ask, client, 'udp'));
    const full = replies.filter((x) => x && !(x[2] & 0x02));
    const slipped = replies.filter((x) => x && x[2] & 0x02);
    expect(full).toHaveLength(20);
    expect(slipped).toHaveLength(90);
    for (const x of slipped) {
      expect([...x!.subarray(4, 10)]).toEqual([0, 1, 0, 0, 0, 0]); // one question, no answer or authority
      expect(x!.length).toBeLessThanOrEqual(ask.length);
    }
    expect(r.stats).toMatchObject({ rrlSlipped: 90, rrlDropped: 90, noerror: 20, truncated: 0 });
  });

  it('TCP is never limited', () => {
    const r = make();
    const ask = query({ name: 'api.gslb.example.com' });
    for (let i = 0; i < 100; i++) expect(r(ask, client, 'tcp')![2] & 0x02).toBe(0);
    expect(r.stats.rrlDropped + r.stats.rrlSlipped).toBe(0);
  });

  it('ECS does not choose the bucket: the source address does', () => {
    const r = make();
    for (let i = 0; i < 40; i++) r(query({ name: 'api.gslb.example.com', opt: { options: [{ code: 8, data: [0, 1, 24, 0, 36, 66, i] }] } }), client, 'udp');
    expect(r.stats.noerror).toBe(20);
  });

  it('errors (REFUSED, FORMERR) are limited in their own bucket; slipped errors keep their rcode with TC', () => {
    const r = make({ errorsPerSecond: 5 });
    const refused = Array.from({ length: 10 }, () => r(query({ name: 'example.org' }), client, 'udp'));
    expect(refused.filter((x) => x && !(x[2] & 0x02))).toHaveLength(5);
    const slip = refused.find((x) => x && x[2] & 0x02)!;
    expect(slip[3] & 0xf).toBe(5);
    expect(r(query({ qdcount: 2 }), client, 'udp')).toSatisfy((x: Buffer | undefined) => x === undefined || (x[2] & 0x02) !== 0);
    // Answers still flow.
    expect(r(query({ name: 'api.gslb.example.com' }), client, 'udp')![2] & 0x02).toBe(0);
  });

  it('the zone settings turn it off or change the rate; the responder option wins', () => {
    const config = bigConfig();
    const off = servingState({ ...config, zone: { ...config.zone, rrl: { ...RRL_DEFAULTS, enabled: false } } }, 2);
    const r = createResponder({ getState: () => off, log: silentLogger(), now: () => clock });
    for (let i = 0; i < 50; i++) r(query({ name: 'api.gslb.example.com' }), client, 'udp');
    expect(r.stats.noerror).toBe(50);
    const five = servingState({ ...config, zone: { ...config.zone, rrl: { ...RRL_DEFAULTS, responsesPerSecond: 5 } } }, 3);
    const r5 = createResponder({ getState: () => five, log: silentLogger(), now: () => clock });
    for (let i = 0; i < 50; i++) r5(query({ name: 'api.gslb.example.com' }), client, 'udp');
    expect(r5.stats.noerror).toBe(5);
    const r7 = createResponder({ getState: () => five, log: silentLogger(), now: () => clock, rrl: { responsesPerSecond: 7 } });
    for (let i = 0; i < 50; i++) r7(query({ name: 'api.gslb.example.com' }), client, 'udp');
    expect(r7.stats.noerror).toBe(7);
  });

  it('the clock refills buckets', () => {
    const r = make();
    const ask = query({ name: 'api.gslb.example.com' });
    clock = 1000;
    for (let i = 0; i < 40; i++) r(ask, client, 'udp');
    clock = 2000;
    for (let i = 0; i < 40; i++) r(ask, client, 'udp');
    expect(r.stats.noerror).toBe(40);
  });
});

describe('rrl shared by workers (rrlShare)', () => {
  it('each rate is multiplied by the share: a worker of 4 allows a quarter of each', () => {
    const rrl = createRateLimiter(settings({ responsesPerSecond: 100, nxdomainsPerSecond: 20, errorsPerSecond: 8 }), 1 / 4);
    expect(burst(rrl.check, '192.0.2.1', 100, 0, KIND.ANSWER).sent).toBe(25);
    expect(burst(rrl.check, '192.0.2.1', 100, 0, KIND.NXDOMAIN).sent).toBe(5);
    expect(burst(rrl.check, '192.0.2.1', 100, 0, KIND.ERROR).sent).toBe(2);
    // It refills at the shared rate too: half a second later, half of 25.
    expect(burst(rrl.check, '192.0.2.1', 100, 500, KIND.ANSWER).sent).toBe(12);
    // The settings say what was configured, not the share.
    expect(rrl.settings.responsesPerSecond).toBe(100);
  });

  it('N workers together allow what one does', () => {
    const one = createRateLimiter(settings({ responsesPerSecond: 90 }));
    const three = Array.from({ length: 3 }, () => createRateLimiter(settings({ responsesPerSecond: 90 }), 1 / 3));
    const alone = burst(one.check, '192.0.2.1', 300).sent;
    // A client's queries spread over the workers (the kernel picks one per datagram): 100 to each.
    const together = three.reduce((n, w) => n + burst(w.check, '192.0.2.1', 100).sent, 0);
    expect(alone).toBe(90);
    expect(together).toBe(90);
  });

  it('never below 1/s, and a new configuration keeps the share', () => {
    const rrl = createRateLimiter(settings({ responsesPerSecond: 2 }), 1 / 16);
    expect(burst(rrl.check, '192.0.2.1', 10).sent).toBe(1);
    rrl.configure(settings({ responsesPerSecond: 160 }));
    expect(burst(rrl.check, '198.51.100.1', 100).sent).toBe(10);
  });

  it('a share outside (0, 1] is refused', () => {
    for (const share of [0, -1, 1.5, Number.NaN]) expect(() => createRateLimiter(settings(), share)).toThrow(/share/);
  });

  it('in the responder (rrlShare), zone settings included', () => {
    const state = servingState(bigConfig(), 1);
    const r = createResponder({ getState: () => state, log: silentLogger(), now: () => 0, rrl: { exempt: [], responsesPerSecond: 40 }, rrlShare: 1 / 2 });
    for (let i = 0; i < 100; i++) r(query({ name: 'api.gslb.example.com' }), { address: '192.0.2.1' }, 'udp');
    expect(r.stats.noerror).toBe(20);
    for (let i = 0; i < 100; i++) r(query({ name: 'nope.gslb.example.com' }), { address: '192.0.2.1' }, 'udp');
    expect(r.stats.nxdomain).toBe(10); // the zone's (default) 20/s, halved
  });
});
