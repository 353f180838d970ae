// The contract every steering filter keeps; each filter's test runs it.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { ServiceDoc } from '../../config/schema.js';
import type { CapacityMap } from '../../snapshot/snapshot.js';
import { seededRandom } from '../steer.js';
import { client, snapshotOf } from '../fixtures.js';
import type { Candidate, Filter, SteerContext } from '../types.js';

const REGIONS = ['sg', 'jkt', 'bkk', 'mnl'] as const;

/** A region's capacity: no report (unknown), headroom, or shedding some or all of its clients. */
const arbitraryCapacity = fc.option(
  fc.record({
    shed: fc.oneof(fc.constantFrom(0, 0.3, 1), fc.double({ min: 0, max: 1, noNaN: true })),
    saturation: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
    reason: fc.constantFrom('4/4 GPUs busy', 'queue 12 deep', 'idle'),
  }),
  { nil: undefined },
);

const arbitraryCase = fc.record({
  down: fc.record({ sg: fc.boolean(), jkt: fc.boolean(), bkk: fc.boolean(), mnl: fc.boolean() }),
  zoneDown: fc.constantFrom('', 'sg-a', 'jkt-b', 'bkk-a', 'mnl-b'),
  subset: fc.subarray([...REGIONS], { minLength: 0 }),
  family: fc.constantFrom(4 as const, 6 as const),
  country: fc.constantFrom(undefined, 'SG', 'ID', 'TH', 'PH', 'MY', 'VN', 'JP'),
  failMode: fc.constantFrom('open' as const, 'closed' as const),
  seed: fc.integer(),
  capacity: fc.record({ sg: arbitraryCapacity, jkt: arbitraryCapacity, bkk: arbitraryCapacity, mnl: arbitraryCapacity }),
  ip: fc.oneof(fc.ipV4(), fc.ipV6()),
  failedOpen: fc.boolean(),
});

type Case = typeof arbitraryCase extends fc.Arbitrary<infer T> ? T : never;

/** Settings for the contract's service 'api', for filters that read some (a policy's list or weights). */
export type ContractOptions = { service?: Partial<ServiceDoc> };

function setUp(c: Case, opts: ContractOptions) {
  const marks = Object.fromEntries(REGIONS.map((r) => [r, { regionDown: c.down[r], zonesDown: [c.zoneDown] }]));
  const capacity = Object.fromEntries(Object.entries(c.capacity).filter(([, v]) => v !== undefined)) as CapacityMap;
  const snapshot = snapshotOf({ marks, service: { failMode: c.failMode, ...opts.service }, capacity });
  const candidates: Candidate[] = snapshot.regions
    .filter((r) => c.subset.includes(r.id as (typeof REGIONS)[number]))
    .map((region) => ({ region, endpoints: region.zones.flatMap((z) => z.endpoints) }));
  const ctx = (): SteerContext => ({
    query: { service: 'api', family: c.family, client: client({ country: c.country, ip: c.ip }) },
    snapshot,
    random: seededRandom(c.seed),
    trace: [],
    failedOpen: c.failedOpen,
  });
  return { candidates, ctx };
}

export function filterContract(name: string, filter: Filter, opts: ContractOptions = {}) {
  it(`${name}: only removes or reorders, never invents (property)`, () => {
    fc.assert(
      fc.property(arbitraryCase, (c) => {
        const { candidates, ctx } = setUp(c, opts);
        const out = filter(candidates, ctx());
        for (const o of out) {
          const src = candidates.find((i) => i.region.id === o.region.id);
          expect(src, `${o.region.id} was not an input`).toBeDefined();
          for (const e of o.endpoints) expect(src!.endpoints).toContain(e);
        }
        expect(new Set(out.map((o) => o.region.id)).size).toBe(out.length);
      }),
      { numRuns: 300 },
    );
  });

  it(`${name}: does not mutate its input, is deterministic, and explains itself`, () => {
    fc.assert(
      fc.property(arbitraryCase, (c) => {
        const { candidates, ctx } = setUp(c, opts);
        const before = JSON.stringify(candidates.map((x) => [x.region.id, x.endpoints.map((e) => e.address)]));
        const c1 = ctx();
        const a = filter(candidates, c1);
        const b = filter(candidates, ctx());
        expect(JSON.stringify(candidates.map((x) => [x.region.id, x.endpoints.map((e) => e.address)]))).toBe(before);
        expect(a.map((x) => [x.region.id, x.endpoints.map((e) => e.address)])).toEqual(b.map((x) => [x.region.id, x.endpoints.map((e) => e.address)]));
        expect(c1.trace.length).toBeGreaterThan(0);
      }),
      { numRuns: 200 },
    );
  });

  it(`${name}: nothing in, nothing out`, () => {
    const none = { sg: undefined, jkt: undefined, bkk: undefined, mnl: undefined };
    const { ctx } = setUp(
      { down: { sg: false, jkt: false, bkk: false, mnl: false }, zoneDown: '', subset: [], family: 4, country: 'SG', failMode: 'open', seed: 1, capacity: none, ip: '198.51.100.0', failedOpen: false },
      opts,
    );
    expect(filter([], ctx())).toEqual([]);
  });
}
