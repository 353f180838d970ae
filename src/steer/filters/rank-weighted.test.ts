import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { client, query, snapshotOf } from '../fixtures.js';
import { seededRandom } from '../steer.js';
import type { Candidate, Random, SteerContext } from '../types.js';
import { filterContract } from './contract.case.js';
import { rankWeighted } from './rank-weighted.js';

function setUp(weights: Record<string, number>, only?: string[]) {
  const snap = snapshotOf({ service: { policy: 'weighted', weights } });
  const all: Candidate[] = snap.regions
    .filter((r) => !only || only.includes(r.id))
    .map((region) => ({ region, endpoints: region.zones.flatMap((z) => z.endpoints) }));
  const rank = (random: Random, country?: string) => {
    const ctx: SteerContext = { query: query({ client: client({ country }) }), snapshot: snap, random, trace: [], failedOpen: false };
    return { order: rankWeighted(all, ctx).map((c) => c.region.id), trace: ctx.trace };
  };
  return { rank };
}

/** Share of first places per region over `runs` seeds. */
function firstShares(weights: Record<string, number>, only?: string[], runs = 6000) {
  const { rank } = setUp(weights, only);
  const counts: Record<string, number> = {};
  for (let seed = 0; seed < runs; seed++) {
    const first = rank(seededRandom(seed)).order[0];
    counts[first] = (counts[first] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(counts).map(([id, n]) => [id, n / runs]));
}

/** A Random that returns the given values in turn. */
const draws = (...values: number[]): Random => {
  let i = 0;
  return () => values[i++ % values.length];
};

describe('rankWeighted', () => {
  filterContract('rankWeighted', rankWeighted, { service: { policy: 'weighted', weights: { sg: 70, jkt: 30 } } });
  filterContract('rankWeighted with weight 0', rankWeighted, { service: { policy: 'weighted', weights: { sg: 1, jkt: 0, mnl: 3 } } });

  it.each([
    { name: '70/30', weights: { sg: 70, jkt: 30 }, only: undefined, shares: { sg: 0.7, jkt: 0.3 } },
    { name: '50/30/20', weights: { sg: 50, jkt: 30, bkk: 20 }, only: undefined, shares: { sg: 0.5, jkt: 0.3, bkk: 0.2 } },
    { name: 'equal weights', weights: { sg: 1, jkt: 1, bkk: 1, mnl: 1 }, only: undefined, shares: { sg: 0.25, jkt: 0.25, bkk: 0.25, mnl: 0.25 } },
    { name: 'a weighted region gone: the others share it', weights: { sg: 50, jkt: 30, bkk: 20 }, only: ['jkt', 'bkk', 'mnl'], shares: { jkt: 0.6, bkk: 0.4 } },
    { name: 'only weight 0 left: a uniform last resort', weights: { sg: 70, jkt: 30, bkk: 0 }, only: ['bkk', 'mnl'], shares: { bkk: 0.5, mnl: 0.5 } },
  ] as { name: string; weights: Record<string, number>; only?: string[]; shares: Record<string, number> }[])('first place follows the weights: $name', ({ weights, only, shares }) => {
    const got = firstShares(weights, only);
    expect(Object.keys(got).sort()).toEqual(Object.keys(shares).sort());
    for (const [id, share] of Object.entries(shares)) expect(Math.abs(got[id] - share), `${id}: ${got[id]} vs ${share}`).toBeLessThan(0.025);
  });

  it('draws by cumulative weight in candidate order, then from those left', () => {
    const { rank } = setUp({ sg: 50, jkt: 30, bkk: 20 });
    expect(rank(draws(0.499, 0, 0)).order.slice(0, 3)).toEqual(['sg', 'jkt', 'bkk']);
    expect(rank(draws(0.5, 0, 0)).order.slice(0, 3)).toEqual(['jkt', 'sg', 'bkk']);
    expect(rank(draws(0.8, 0, 0)).order.slice(0, 3)).toEqual(['bkk', 'sg', 'jkt']);
    // after bkk (20 of 100), 0.7 of the 80 left is 56: past sg's 50, so jkt.
    expect(rank(draws(0.9, 0.7, 0)).order.slice(0, 3)).toEqual(['bkk', 'jkt', 'sg']);
    expect(rank(draws(0.999999, 0.999999, 0)).order.slice(0, 3)).toEqual(['bkk', 'jkt', 'sg']);
  });

  it('puts weight-0 and unweighted regions after every weighted one (property)', () => {
    const { rank } = setUp({ sg: 2, jkt: 0, bkk: 5 });
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const order = rank(seededRandom(seed)).order;
        expect(new Set(order.slice(0, 2))).toEqual(new Set(['sg', 'bkk']));
        expect(new Set(order.slice(2))).toEqual(new Set(['jkt', 'mnl']));
      }),
      { numRuns: 300 },
    );
  });

  it('ignores where the client is: the same draw gives the same order (property)', () => {
    const { rank } = setUp({ sg: 70, jkt: 30, bkk: 5 });
    fc.assert(
      fc.property(fc.integer(), fc.constantFrom(undefined, 'SG', 'ID', 'TH', 'PH', 'JP'), (seed, country) => {
        expect(rank(seededRandom(seed), country).order).toEqual(rank(seededRandom(seed)).order);
      }),
      { numRuns: 300 },
    );
  });

  it('shows the weights, the shares among the candidates and the draw in the trace', () => {
    const { rank } = setUp({ sg: 70, jkt: 30 });
    expect(rank(draws(0.35, 0.1, 0.1)).trace).toEqual(['rank weighted: sg w70 (70%), jkt w30 (30%), bkk w0, mnl w0; draw 35.0 of 100 → sg; order sg > jkt > bkk > mnl']);
    expect(setUp({ sg: 70, jkt: 30 }, ['jkt', 'mnl']).rank(draws(0.5)).trace[0]).toBe('rank weighted: jkt w30 (100%), mnl w0; only jkt; order jkt > mnl');
    expect(setUp({ sg: 70, jkt: 30 }, ['bkk', 'mnl']).rank(draws(0.75)).trace[0]).toBe(
      'rank weighted: bkk w0, mnl w0; no weighted region left, last resort among weight 0; draw 1.5 of 2 → mnl; order mnl > bkk',
    );
  });
});
