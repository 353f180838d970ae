// The contract every balancer picker keeps; each picker's test runs it.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { seededRandom } from '../../steer/steer.js';
import type { GpuGauges, Instance, InstanceState, PickContext, Picker, RequestKind } from '../types.js';

/** A small seeded generator for deterministic picks (the one steering uses). */
export const seeded = seededRandom;

export const NOW = 1_000_000;

/** A ready, idle, full-weight instance state, with overrides. */
export function host(id: string, over: Partial<Omit<InstanceState, 'instance'>> & { weight?: number; instance?: Partial<Instance> } = {}): InstanceState {
  const { weight = 1, instance, ...rest } = over;
  return {
    instance: { id, url: `http://${id}`, weight, models: ['m'], kinds: ['chat'], ...instance },
    ready: true,
    ejections: 0,
    consecutiveFailures: 0,
    outstanding: 0,
    ...rest,
  };
}

export function gauges(over: Partial<GpuGauges> = {}): GpuGauges {
  return { running: 0, waiting: 0, kvCacheUsage: 0, memoryExhausted: false, scrapedAt: NOW, ...over };
}

export function ctxOf(random: () => number, over: Partial<PickContext> = {}): PickContext {
  return { now: NOW, random, ...over };
}

/** How often each id is picked over n picks (with per-pick hooks for load simulation). */
export function shares(picker: Picker, hosts: readonly InstanceState[], n: number, seed = 1, over: Partial<PickContext> = {}): Record<string, number> {
  const random = seeded(seed);
  const out: Record<string, number> = Object.fromEntries(hosts.map((h) => [h.instance.id, 0]));
  for (let k = 0; k < n; k++) {
    const s = picker.pick(hosts, ctxOf(random, over));
    if (s) out[s.instance.id]++;
  }
  return out;
}

const arbitraryHost = fc.record({
  weight: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 100 }), fc.double({ min: 0.01, max: 10, noNaN: true })),
  outstanding: fc.nat(20),
  ewmaMs: fc.option(fc.double({ min: 0, max: 10_000, noNaN: true }), { nil: undefined }),
  readyAgo: fc.option(fc.nat(60_000), { nil: undefined }),
  gpu: fc.option(
    fc.record({
      running: fc.nat(64),
      waiting: fc.nat(64),
      kvCacheUsage: fc.double({ min: 0, max: 1, noNaN: true }),
      memoryExhausted: fc.boolean(),
      age: fc.nat(20_000),
    }),
    { nil: undefined },
  ),
});

export const arbitraryCase = fc.record({
  hosts: fc.array(arbitraryHost, { minLength: 0, maxLength: 7 }),
  picks: fc.array(
    fc.record({
      model: fc.constantFrom(undefined, 'm', 'e'),
      kind: fc.constantFrom<RequestKind | undefined>(undefined, 'chat', 'embeddings'),
      dt: fc.nat(5_000),
    }),
    { minLength: 1, maxLength: 12 },
  ),
  seed: fc.integer(),
});

type Case = typeof arbitraryCase extends fc.Arbitrary<infer T> ? T : never;

export function hostsOf(c: Case): InstanceState[] {
  return c.hosts.map((h, i) =>
    host(`i${i}`, {
      weight: h.weight,
      outstanding: h.outstanding,
      ewmaMs: h.ewmaMs,
      readySince: h.readyAgo === undefined ? undefined : NOW - h.readyAgo,
      gpu: h.gpu && { running: h.gpu.running, waiting: h.gpu.waiting, kvCacheUsage: h.gpu.kvCacheUsage, memoryExhausted: h.gpu.memoryExhausted, scrapedAt: NOW - h.gpu.age },
    }),
  );
}

export function run(picker: Picker, hosts: readonly InstanceState[], c: Case): (InstanceState | undefined)[] {
  const random = seeded(c.seed);
  let now = NOW;
  return c.picks.map((p) => {
    now += p.dt;
    return picker.pick(hosts, { model: p.model, kind: p.kind, now, random });
  });
}

export function pickerContract(name: string, make: () => Picker) {
  it(`${name}: is named`, () => {
    expect(make().name).toBe(name);
  });

  it(`${name}: nothing in, nothing out`, () => {
    const p = make();
    expect(p.pick([], ctxOf(seeded(1)))).toBeUndefined();
    expect(p.pick([], { now: 0, random: () => 0.5, model: 'm', kind: 'chat' })).toBeUndefined();
  });

  it(`${name}: picks only among its candidates, never a weight-0 one, and always one when some can serve (property)`, () => {
    fc.assert(
      fc.property(arbitraryCase, (c) => {
        const hosts = hostsOf(c);
        const picked = run(make(), hosts, c);
        const serviceable = hosts.some((h) => h.instance.weight > 0 && !h.gpu?.memoryExhausted);
        for (const s of picked) {
          if (s === undefined) {
            expect(serviceable, 'undefined although an instance could serve').toBe(false);
            continue;
          }
          expect(hosts, `${s.instance.id} is not a candidate`).toContain(s);
          expect(s.instance.weight, `${s.instance.id} has weight 0`).toBeGreaterThan(0);
        }
        if (hosts.every((h) => h.instance.weight === 0)) expect(picked.every((s) => s === undefined)).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it(`${name}: deterministic for a seed, and does not mutate its candidates (property)`, () => {
    fc.assert(
      fc.property(arbitraryCase, (c) => {
        const hosts = hostsOf(c);
        const before = structuredClone(hosts);
        const a = run(make(), hosts, c).map((s) => s?.instance.id);
        const b = run(make(), hosts, c).map((s) => s?.instance.id);
        expect(a).toEqual(b);
        expect(hosts).toEqual(before);
      }),
      { numRuns: 300 },
    );
  });

  it(`${name}: a drained (weight 0) instance gets nothing while others serve`, () => {
    const hosts = [host('a'), host('drained', { weight: 0 }), host('b')];
    const got = shares(make(), hosts, 200);
    expect(got.drained).toBe(0);
    expect(got.a + got.b).toBe(200);
  });

  it(`${name}: a minimal context is enough`, () => {
    const hosts = [host('a'), host('b')];
    expect(hosts).toContain(make().pick(hosts, { now: 0, random: () => 0 }));
  });
}
