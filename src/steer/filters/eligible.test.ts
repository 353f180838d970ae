import { describe, expect, it } from 'vitest';
import { snapshotOf, query } from '../fixtures.js';
import type { Candidate, SteerContext, SteerQuery } from '../types.js';
import { filterContract } from './contract.case.js';
import { eligible } from './eligible.js';

function run(q: Partial<SteerQuery>, snap = snapshotOf()) {
  const ctx: SteerContext = { query: query(q), snapshot: snap, random: Math.random, trace: [], failedOpen: false };
  const all: Candidate[] = snap.regions.map((region) => ({ region, endpoints: region.zones.flatMap((z) => z.endpoints) }));
  return { out: eligible(all, ctx), trace: ctx.trace };
}

describe('eligible', () => {
  filterContract('eligible', eligible);

  it.each([
    { name: 'A: every region, IPv4 endpoints only', q: {}, regions: ['sg', 'jkt', 'bkk', 'mnl'], family: 4 },
    { name: 'AAAA: IPv6 endpoints only', q: { family: 6 as const }, regions: ['sg', 'jkt', 'bkk', 'mnl'], family: 6 },
    { name: 'pinned name: one region', q: { pinnedRegion: 'bkk' }, regions: ['bkk'], family: 4 },
    { name: 'pinned to an unknown region: none', q: { pinnedRegion: 'xx' }, regions: [], family: 4 },
    { name: 'unknown service: none', q: { service: 'chat' }, regions: [], family: 4 },
  ])('$name', ({ q, regions, family }) => {
    const { out } = run(q);
    expect(out.map((c) => c.region.id)).toEqual(regions);
    for (const c of out) {
      expect(c.endpoints.length).toBe(2);
      for (const e of c.endpoints) expect(e.families).toEqual([family]);
    }
  });

  it('keeps only the regions a service lists', () => {
    const { out } = run({}, snapshotOf({ service: { regions: ['jkt', 'mnl'] } }));
    expect(out.map((c) => c.region.id)).toEqual(['jkt', 'mnl']);
  });

  it('drops regions without an endpoint of the family', () => {
    const { out, trace } = run({ family: 6 }, snapshotOf({ marks: { sg: { noV6: true } } }));
    expect(out.map((c) => c.region.id)).toEqual(['jkt', 'bkk', 'mnl']);
    expect(trace[0]).toMatch(/3 of 4 regions serve api over IPv6/);
  });
});
