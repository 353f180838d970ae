import { describe, expect, it } from 'vitest';
import { query, snapshotOf } from '../fixtures.js';
import type { Candidate, SteerContext } from '../types.js';
import { filterContract } from './contract.case.js';
import { up } from './up.js';

function run(snap: ReturnType<typeof snapshotOf>) {
  const ctx: SteerContext = { query: query(), snapshot: snap, random: Math.random, trace: [], failedOpen: false };
  const all: Candidate[] = snap.regions.map((region) => ({
    region,
    endpoints: region.zones.flatMap((z) => z.endpoints).filter((e) => e.families.includes(4)),
  }));
  return { out: up(all, ctx), ctx };
}

describe('up', () => {
  filterContract('up', up);

  it('keeps every region when all is healthy', () => {
    const { out, ctx } = run(snapshotOf());
    expect(out.map((c) => c.region.id)).toEqual(['sg', 'jkt', 'bkk', 'mnl']);
    expect(ctx.failedOpen).toBe(false);
  });

  it.each([
    { name: 'a dead zone leaves the answer', marks: { jkt: { zonesDown: ['jkt-a'] } }, jkt: ['203.0.113.22'] },
    { name: 'a dead endpoint leaves the answer', marks: { jkt: { endpointsDown: ['203.0.113.21'] } }, jkt: ['203.0.113.22'] },
    { name: 'both zones down: region leaves', marks: { jkt: { zonesDown: ['jkt-a', 'jkt-b'] } }, jkt: undefined },
    { name: 'region down: region leaves', marks: { jkt: { regionDown: true } }, jkt: undefined },
  ])('$name', ({ marks, jkt }) => {
    const { out } = run(snapshotOf({ marks }));
    expect(out.find((c) => c.region.id === 'jkt')?.endpoints.map((e) => e.address)).toEqual(jkt);
    expect(out.find((c) => c.region.id === 'sg')?.endpoints.length).toBe(2);
  });

  const allDown = { sg: { regionDown: true }, jkt: { regionDown: true }, bkk: { regionDown: true }, mnl: { regionDown: true } };

  it('fails open when nothing is up, and says so', () => {
    const { out, ctx } = run(snapshotOf({ marks: allDown }));
    expect(out.map((c) => c.region.id)).toEqual(['sg', 'jkt', 'bkk', 'mnl']);
    expect(ctx.failedOpen).toBe(true);
    expect(ctx.trace.join('\n')).toMatch(/FAILING OPEN/);
  });

  it('answers nothing when nothing is up and the service is fail-closed', () => {
    const { out, ctx } = run(snapshotOf({ marks: allDown, service: { failMode: 'closed' } }));
    expect(out).toEqual([]);
    expect(ctx.failedOpen).toBe(false);
    expect(ctx.trace.join('\n')).toMatch(/fail-closed/);
  });
});
