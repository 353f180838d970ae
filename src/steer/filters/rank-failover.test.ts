import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { client, query, snapshotOf } from '../fixtures.js';
import type { Candidate, SteerContext } from '../types.js';
import { filterContract } from './contract.case.js';
import { rankFailover } from './rank-failover.js';

function rank(regions: string[], only?: string[], country?: string) {
  const snap = snapshotOf({ service: { policy: 'failover', regions } });
  const ctx: SteerContext = { query: query({ client: client({ country }) }), snapshot: snap, random: Math.random, trace: [], failedOpen: false };
  const all: Candidate[] = snap.regions
    .filter((r) => !only || only.includes(r.id))
    .map((region) => ({ region, endpoints: region.zones.flatMap((z) => z.endpoints) }));
  return { order: rankFailover(all, ctx).map((c) => c.region.id), trace: ctx.trace };
}

describe('rankFailover', () => {
  filterContract('rankFailover', rankFailover, { service: { policy: 'failover', regions: ['jkt', 'sg', 'bkk'] } });

  it.each([
    { name: 'the priority list is the order', regions: ['jkt', 'sg', 'bkk', 'mnl'], only: undefined, order: ['jkt', 'sg', 'bkk', 'mnl'] },
    { name: 'not the snapshot order', regions: ['mnl', 'bkk', 'jkt', 'sg'], only: undefined, order: ['mnl', 'bkk', 'jkt', 'sg'] },
    { name: 'unlisted regions leave', regions: ['jkt', 'sg'], only: undefined, order: ['jkt', 'sg'] },
    { name: 'the first choice gone: the second leads', regions: ['jkt', 'sg', 'bkk'], only: ['sg', 'bkk', 'mnl'], order: ['sg', 'bkk'] },
    { name: 'only an unlisted region left: nothing', regions: ['jkt', 'sg'], only: ['mnl'], order: [] },
    { name: 'a single region', regions: ['bkk'], only: undefined, order: ['bkk'] },
  ])('$name', ({ regions, only, order }) => {
    expect(rank(regions, only).order).toEqual(order);
  });

  it('ignores where the client is (property)', () => {
    fc.assert(
      fc.property(
        fc.shuffledSubarray(['sg', 'jkt', 'bkk', 'mnl'], { minLength: 1 }),
        fc.subarray(['sg', 'jkt', 'bkk', 'mnl']),
        fc.constantFrom(undefined, 'SG', 'ID', 'TH', 'PH', 'VN', 'JP'),
        (regions, only, country) => {
          const order = rank(regions, only, country).order;
          expect(order).toEqual(regions.filter((r) => only.includes(r)));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('says the priority of each region, which it passed over and which never serve', () => {
    expect(rank(['jkt', 'sg'], ['jkt', 'sg']).trace).toEqual(['rank failover: jkt (priority 1) > sg (priority 2)']);
    expect(rank(['jkt', 'sg', 'bkk'], ['sg', 'bkk', 'mnl']).trace).toEqual([
      'rank failover: sg (priority 2) > bkk (priority 3); passed over: jkt (priority 1); not listed, never serve: mnl',
    ]);
    expect(rank(['jkt'], ['mnl']).trace[0]).toMatch(/^rank failover: no listed region among the candidates/);
  });
});
