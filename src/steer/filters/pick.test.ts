import { describe, expect, it } from 'vitest';
import { seededRandom } from '../steer.js';
import { query, snapshotOf } from '../fixtures.js';
import type { Candidate, SteerContext } from '../types.js';
import { filterContract } from './contract.case.js';
import { pick } from './pick.js';

function setUp(opts: Parameters<typeof snapshotOf>[0] = {}) {
  const snap = snapshotOf(opts);
  const all: Candidate[] = snap.regions.map((region) => ({
    region,
    endpoints: region.zones.flatMap((z) => z.endpoints).filter((e) => e.families.includes(4)),
  }));
  const ctx = (seed: number): SteerContext => ({ query: query(), snapshot: snap, random: seededRandom(seed), trace: [], failedOpen: false });
  return { all, ctx };
}

describe('pick', () => {
  filterContract('pick', pick);

  it('keeps the first region with all of its endpoints, across zones', () => {
    const { all, ctx } = setUp();
    const out = pick(all, ctx(1));
    expect(out.map((c) => c.region.id)).toEqual(['sg']);
    expect(out[0].endpoints.map((e) => e.address).sort()).toEqual(['203.0.113.11', '203.0.113.12']);
    expect(new Set(out[0].endpoints.map((e) => e.zone))).toEqual(new Set(['sg-a', 'sg-b']));
  });

  it('puts endpoints first in proportion to their weight', () => {
    const { all, ctx } = setUp({ marks: { sg: { weights: { '203.0.113.11': 300, '203.0.113.12': 100 } } } });
    let heavyFirst = 0;
    const runs = 4000;
    for (let seed = 0; seed < runs; seed++) if (pick(all, ctx(seed))[0].endpoints[0].address === '203.0.113.11') heavyFirst++;
    expect(heavyFirst / runs).toBeGreaterThan(0.7);
    expect(heavyFirst / runs).toBeLessThan(0.8);
  });

  it('leaves weight-0 endpoints out unless every endpoint has weight 0', () => {
    const some = setUp({ marks: { sg: { weights: { '203.0.113.11': 0 } } } });
    expect(pick(some.all, some.ctx(1))[0].endpoints.map((e) => e.address)).toEqual(['203.0.113.12']);
    const none = setUp({ marks: { sg: { weights: { '203.0.113.11': 0, '203.0.113.12': 0 } } } });
    expect(pick(none.all, none.ctx(1))[0].endpoints).toHaveLength(2);
  });

  it('answers at most maxAnswers addresses', () => {
    const { all, ctx } = setUp({ service: { maxAnswers: 1 } });
    expect(pick(all, ctx(3))[0].endpoints).toHaveLength(1);
  });
});
