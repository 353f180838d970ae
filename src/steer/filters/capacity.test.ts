import { describe, expect, it } from 'vitest';
import type { CapacityMap } from '../../snapshot/snapshot.js';
import { client, clientNets, query, shed, snapshotOf } from '../fixtures.js';
import type { Candidate, ClientFacts, SteerContext } from '../types.js';
import { BUCKET_PREFIX, capacity, clientBucket } from './capacity.js';
import { filterContract } from './contract.case.js';

/** Runs the filter on candidates already ranked in `order` (as rank would for an Indonesian client). */
function run(capacityMap: CapacityMap, facts: ClientFacts = client(), order = ['jkt', 'sg', 'bkk', 'mnl'], failedOpen = false) {
  const snap = snapshotOf({ capacity: capacityMap });
  const ctx: SteerContext = { query: query({ client: facts }), snapshot: snap, random: Math.random, trace: [], failedOpen };
  const ranked: Candidate[] = order.map((id) => {
    const region = snap.regionById.get(id)!;
    return { region, endpoints: region.zones.flatMap((z) => z.endpoints) };
  });
  const out = capacity(ranked, ctx);
  return { order: out.map((c) => c.region.id), first: out[0]?.region.id, trace: ctx.trace, shedding: ctx.shedding, out, ranked };
}

/** Where each of `clients` lands, by first region. */
function landings(capacityMap: CapacityMap, clients: ClientFacts[], order?: string[]) {
  const counts: Record<string, number> = {};
  for (const c of clients) {
    const first = run(capacityMap, c, order).first ?? 'none';
    counts[first] = (counts[first] ?? 0) + 1;
  }
  return counts;
}

const nets = clientNets(2000);

describe('capacity', () => {
  filterContract('capacity', capacity);

  it.each([
    { name: 'no capacity data', map: {} },
    { name: 'the first region reports headroom', map: { jkt: shed(0, 0.4) } },
    { name: 'only other regions shed', map: { sg: shed(0.5), bkk: shed(1) } },
  ] as { name: string; map: CapacityMap }[])('$name → rank order unchanged for every client, no shedding', ({ map }) => {
    for (const c of nets.slice(0, 300)) {
      const r = run(map, c);
      expect(r.order).toEqual(['jkt', 'sg', 'bkk', 'mnl']);
      expect(r.shedding).toBeUndefined();
      expect(r.out).toBe(r.ranked);
    }
  });

  it('sheds 30% of 2000 distinct /24s to the next region, the rest keep the rank order', () => {
    const counts = landings({ jkt: shed(0.3, 0.92) }, nets);
    expect(Object.keys(counts).sort()).toEqual(['jkt', 'sg']);
    expect(Math.abs(counts.sg / nets.length - 0.3)).toBeLessThan(0.05);
    for (const c of nets.slice(0, 200)) {
      const r = run({ jkt: shed(0.3) }, c);
      expect(r.order).toEqual(r.first === 'sg' ? ['sg', 'jkt', 'bkk', 'mnl'] : ['jkt', 'sg', 'bkk', 'mnl']);
    }
  });

  it.each([0.1, 0.5, 0.8])('sheds %s of 2000 /24s within ±5%', (share) => {
    const counts = landings({ jkt: shed(share) }, nets);
    expect(Math.abs((counts.sg ?? 0) / nets.length - share)).toBeLessThan(0.05);
  });

  it('lands the same client network the same way every time, whatever host asks', () => {
    const map = { jkt: shed(0.3) };
    for (let i = 0; i < 256; i++) {
      const net = `10.0.${i}`;
      const first = run(map, client({ ip: `${net}.0` })).first;
      for (const host of [1, 77, 255]) expect(run(map, client({ ip: `${net}.${host}` })).first, `${net}.${host}`).toBe(first);
      expect(run(map, client({ ip: `::ffff:${net}.9` })).first, 'IPv4-mapped').toBe(first);
    }
  });

  it('only adds clients as the share grows: a client moved at 30% is moved at 50%', () => {
    for (const c of nets) {
      if (run({ jkt: shed(0.3) }, c).first === 'sg') expect(run({ jkt: shed(0.5) }, c).first).toBe('sg');
    }
  });

  it('splits IPv6 clients by /56', () => {
    const v6 = Array.from({ length: 2000 }, (_, i) => client({ ip: `2001:db8:${(i >> 8).toString(16)}:${(i & 255).toString(16)}00::`, scope: 48 }));
    const counts = landings({ jkt: shed(0.3) }, v6);
    expect(Math.abs(counts.sg / v6.length - 0.3)).toBeLessThan(0.05);
    for (const c of v6.slice(0, 100)) {
      const inside = c.ip.replace(/00::$/, 'ff:ffff:1:2:3');
      expect(clientBucket(inside).hash).toBe(clientBucket(c.ip).hash);
      expect(run({ jkt: shed(0.3) }, client({ ip: inside })).first).toBe(run({ jkt: shed(0.3) }, c).first);
    }
    expect(clientBucket('2001:db8:0:1ff::9')).toMatchObject({ network: '2001:db8:0:100::/56', prefix: 56 });
    expect(clientBucket('198.51.100.77')).toMatchObject({ network: '198.51.100.0/24', prefix: 24 });
  });

  it('moves nobody when every other region sheds too (bounded spill-over)', () => {
    const map = { jkt: shed(0.6), sg: shed(0.1), bkk: shed(0.3), mnl: shed(1) };
    expect(landings(map, nets)).toEqual({ jkt: nets.length });
    const r = run(map);
    expect(r.shedding).toEqual({ region: 'jkt', share: 0.6 });
    expect(r.trace).toEqual([
      'capacity: jkt shedding 60% (test); passing over sg shedding 10%, bkk shedding 30%, mnl shedding 100%; no other region has headroom: nobody moves, this client stays',
    ]);
  });

  it('moves nobody when the shedding region is the only candidate', () => {
    expect(landings({ jkt: shed(1) }, nets.slice(0, 200), ['jkt'])).toEqual({ jkt: 200 });
  });

  it('passes over a region that sheds itself, to the next with headroom', () => {
    const counts = landings({ jkt: shed(0.5), sg: shed(0.2) }, nets);
    expect(Object.keys(counts).sort()).toEqual(['bkk', 'jkt']);
    const moved = nets.map((c) => run({ jkt: shed(0.5), sg: shed(0.2) }, c)).find((r) => r.first === 'bkk')!;
    expect(moved.order).toEqual(['bkk', 'jkt', 'sg', 'mnl']);
  });

  it('takes a region with no report (unknown) as headroom, and says so', () => {
    const moved = nets.map((c) => run({ jkt: shed(0.5), sg: shed(0, 0.3, 'fine') }, c, ['jkt', 'bkk', 'sg'])).find((r) => r.first === 'bkk')!;
    expect(moved.trace[0]).toMatch(/→ bkk \(no report: unknown, taken as headroom\)$/);
  });

  it('moves everyone who has a headroom target at shed 1.0, with no per-network split', () => {
    expect(landings({ jkt: shed(1) }, nets)).toEqual({ sg: nets.length });
    expect(run({ jkt: shed(1) }).shedding).toEqual({ region: 'jkt', share: 1, to: 'sg', bucketPrefix: undefined });
  });

  it('records the split network for the decision scope while splitting', () => {
    expect(run({ jkt: shed(0.3) }).shedding).toEqual({ region: 'jkt', share: 0.3, to: 'sg', bucketPrefix: BUCKET_PREFIX[4] });
    expect(run({ jkt: shed(0.3) }, client({ ip: '2001:db8::1' })).shedding?.bucketPrefix).toBe(56);
  });

  it('is not consulted while failing open', () => {
    const r = run({ jkt: shed(1) }, client(), undefined, true);
    expect(r.order).toEqual(['jkt', 'sg', 'bkk', 'mnl']);
    expect(r.shedding).toBeUndefined();
    expect(r.trace).toEqual(['capacity: failing open, not consulted']);
  });

  it('explains itself', () => {
    const map = { jkt: shed(0.3, 0.92, '4/4 GPUs busy'), sg: shed(0, 0.5, '2/4 GPUs busy') };
    const results = nets.slice(0, 50).map((c) => run(map, c));
    const moved = results.find((r) => r.first === 'sg')!;
    const stayed = results.find((r) => r.first === 'jkt')!;
    expect(moved.trace[0]).toMatch(/^capacity: jkt shedding 30% \(saturation 0\.92, 4\/4 GPUs busy\); this client \(10\.0\.\d+\.0\/24, hash 0\.[0-2]\d\d\) → sg$/);
    expect(stayed.trace[0]).toMatch(/^capacity: jkt shedding 30% \(saturation 0\.92, 4\/4 GPUs busy\); this client \(10\.0\.\d+\.0\/24, hash 0\.\d+\) stays; shed clients go to sg$/);
    expect(run({}).trace).toEqual(['capacity: no report for jkt (unknown, not shedding)']);
    expect(run({ jkt: shed(0, 0.41, '1/4 GPUs busy') }).trace).toEqual(['capacity: jkt has headroom (saturation 0.41, 1/4 GPUs busy)']);
  });
});

describe('snapshot capacity', () => {
  it('is empty (every region unknown) without capacity data', () => {
    expect(snapshotOf().capacity).toEqual({});
  });

  it('keeps configured regions only, clamps shed to 0..1, and freezes', () => {
    const snap = snapshotOf({ capacity: { jkt: shed(1.7), sg: shed(-0.2), bkk: shed(Number.NaN), lax: shed(0.5) } });
    expect(Object.keys(snap.capacity).sort()).toEqual(['bkk', 'jkt', 'sg']);
    expect([snap.capacity.jkt.shed, snap.capacity.sg.shed, snap.capacity.bkk.shed]).toEqual([1, 0, 0]);
    expect(Object.isFrozen(snap.capacity)).toBe(true);
  });
});
