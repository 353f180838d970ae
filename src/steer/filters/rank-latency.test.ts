import { describe, expect, it } from 'vitest';
import { client, query, snapshotOf } from '../fixtures.js';
import type { Candidate, ClientFacts, SteerContext } from '../types.js';
import { filterContract } from './contract.case.js';
import { rankLatency } from './rank-latency.js';

// Measured RTT (ms) from each probe region to each endpoint region.
const MATRIX = {
  sg: { sg: 1, jkt: 12, bkk: 30, mnl: 35 },
  jkt: { sg: 12, jkt: 1, bkk: 40, mnl: 50 },
  bkk: { sg: 30, jkt: 40, bkk: 1, mnl: 8 }, // an unusually good bkk–mnl path
  mnl: { sg: 35, jkt: 50, bkk: 8, mnl: 1 },
};

function rank(facts: ClientFacts, latency: NonNullable<Parameters<typeof snapshotOf>[0]>['latency'] = MATRIX, only?: string[]) {
  const snap = snapshotOf({ latency, service: { policy: 'latency' } });
  const ctx: SteerContext = { query: query({ client: facts }), snapshot: snap, random: Math.random, trace: [], failedOpen: false };
  const all: Candidate[] = snap.regions
    .filter((r) => !only || only.includes(r.id))
    .map((region) => ({ region, endpoints: region.zones.flatMap((z) => z.endpoints) }));
  return { order: rankLatency(all, ctx).map((c) => c.region.id), trace: ctx.trace };
}

describe('rankLatency', () => {
  filterContract('rankLatency', rankLatency);

  it('ranks by RTT from the probe region nearest the client', () => {
    // Vietnam: nearest probe region is bkk; by RTT from bkk, mnl (8 ms) beats sg (30 ms), unlike by distance.
    const { order, trace } = rank(client({ country: 'VN' }));
    expect(order).toEqual(['bkk', 'mnl', 'sg', 'jkt']);
    expect(trace.at(-1)).toMatch(/^rank latency from probe region bkk: bkk \(1\.0 ms\) > mnl \(8\.0 ms\)/);
  });

  it('keeps home countries and overrides first', () => {
    expect(rank(client({ country: 'ID' }), MATRIX, ['sg', 'jkt', 'mnl']).order[0]).toBe('jkt');
    expect(rank(client({ region: 'mnl' })).order[0]).toBe('mnl');
  });

  it('falls back to distance where a measurement is missing', () => {
    const partial = { bkk: { bkk: 1, sg: 30 } };
    expect(rank(client({ country: 'VN' }), partial).order).toEqual(['bkk', 'sg', 'mnl', 'jkt']);
  });

  it('is the geo order when there are no measurements', () => {
    const { order, trace } = rank(client({ country: 'VN' }), {});
    expect(order).toEqual(['bkk', 'mnl', 'sg', 'jkt']);
    expect(trace.at(-1)).toMatch(/no measurements/);
  });
});
