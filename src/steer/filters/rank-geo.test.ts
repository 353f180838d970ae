import { describe, expect, it } from 'vitest';
import { client, query, snapshotOf } from '../fixtures.js';
import type { Candidate, ClientFacts, SteerContext } from '../types.js';
import { filterContract } from './contract.case.js';
import { rankGeo } from './rank-geo.js';

function rank(facts: ClientFacts, only?: string[], defaultRegion?: string) {
  const snap = snapshotOf({ defaultRegion });
  const ctx: SteerContext = { query: query({ client: facts }), snapshot: snap, random: Math.random, trace: [], failedOpen: false };
  const all: Candidate[] = snap.regions
    .filter((r) => !only || only.includes(r.id))
    .map((region) => ({ region, endpoints: region.zones.flatMap((z) => z.endpoints) }));
  return { order: rankGeo(all, ctx).map((c) => c.region.id), trace: ctx.trace };
}

describe('rankGeo', () => {
  filterContract('rankGeo', rankGeo);

  it.each([
    { who: 'Singapore', facts: client({ country: 'SG' }), first: 'sg' },
    { who: 'Indonesia', facts: client({ country: 'ID' }), first: 'jkt' },
    { who: 'Medan, Indonesia (nearer sg: home country wins)', facts: client({ country: 'ID', location: { lat: 3.59, lon: 98.67 } }), first: 'jkt' },
    { who: 'Medan, no country known (nearest: sg)', facts: client({ location: { lat: 3.59, lon: 98.67 } }), first: 'sg' },
    { who: 'Thailand', facts: client({ country: 'TH' }), first: 'bkk' },
    { who: 'Philippines', facts: client({ country: 'PH' }), first: 'mnl' },
    { who: 'Malaysia (nearest: sg)', facts: client({ country: 'MY' }), first: 'sg' },
    { who: 'Vietnam (nearest: bkk)', facts: client({ country: 'VN' }), first: 'bkk' },
    { who: 'Japan (nearest: mnl)', facts: client({ country: 'JP' }), first: 'mnl' },
    { who: 'Australia (nearest: jkt)', facts: client({ country: 'AU' }), first: 'jkt' },
    { who: 'a nets override to bkk', facts: client({ region: 'bkk' }), first: 'bkk' },
    { who: 'unknown: default region', facts: client({}), first: 'sg' },
  ])('$who → $first', ({ facts, first }) => {
    expect(rank(facts).order[0]).toBe(first);
  });

  it('orders the rest by distance', () => {
    expect(rank(client({ country: 'MY' })).order).toEqual(['sg', 'jkt', 'mnl', 'bkk']);
    expect(rank(client({ country: 'TH' })).order).toEqual(['bkk', 'sg', 'mnl', 'jkt']);
  });

  it('sends an unknown client to the default region, and to its nearest neighbour when it is gone', () => {
    expect(rank(client({}), undefined, 'mnl').order[0]).toBe('mnl');
    expect(rank(client({}), ['sg', 'jkt', 'bkk'], 'mnl').order).toEqual(['bkk', 'sg', 'jkt']);
  });

  it('sends a home country to the nearest other region when its home is gone', () => {
    expect(rank(client({ country: 'ID', location: { lat: -6.2, lon: 106.8 } }), ['sg', 'bkk', 'mnl']).order[0]).toBe('sg');
  });

  it('says why in the trace', () => {
    const { trace } = rank(client({ country: 'MY' }));
    expect(trace[0]).toMatch(/^rank geo from client at 2\.50,112\.50: sg \(\d+ km\) > jkt/);
    expect(rank(client({ country: 'TH' })).trace[0]).toMatch(/bkk \(home of TH, \d+ km\)/);
  });
});
