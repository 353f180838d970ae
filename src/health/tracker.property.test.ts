import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { all, EP, fleet, INTERVAL, kinds } from './harness.js';
import { createHealthTracker } from './tracker.js';
import type { HealthEvent } from './types.js';

/** A small seeded generator (public-domain mulberry32). */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const flips = (events: readonly HealthEvent[]) => events.filter((e) => e.kind === 'endpoint.down' || e.kind === 'endpoint.up');

describe('random 10% probe failures do not flap (defaults: fall 2, rise 4, 4 agents)', () => {
  const AGENTS = 4;
  const ENDPOINTS = Array.from({ length: 8 }, (_, i) => `jkt/jkt-${'ab'[i % 2]}/127.0.1.${21 + i}`);
  const ROUNDS = 120; // 60 s at 500 ms
  const CHECKS = AGENTS * ENDPOINTS.length * ROUNDS;

  // fast-check draws the seed of an unbiased generator: its own integer arrays
  // lean toward edge values, which would not be independent 10% failures.
  const run = fc.integer({ min: 1, max: 0x7fffffff });

  // The README computes about 0.4% (lock-step rounds) to 1% (jittered agents)
  // chance of any flip in such a minute; these seeds are asserted at zero.
  it.each([{ seed: 20260601 }, { seed: 1 }, { seed: 424242 }])('zero flips over 60 s of 8 endpoints (seed $seed, 20 runs)', ({ seed }) => {
    let failures = 0;
    fc.assert(
      fc.property(run, (runSeed) => {
        const random = mulberry32(runSeed);
        const tr = createHealthTracker({ now: 0 });
        tr.setEndpoints(ENDPOINTS, 0);
        const events: HealthEvent[] = [];
        for (let r = 0; r < ROUNDS; r++) {
          const t = (r + 1) * INTERVAL;
          // The agents' order within a round varies, as jittered agents' reports interleave.
          const rotation = Math.floor(random() * AGENTS);
          for (let j = 0; j < AGENTS; j++) {
            const a = (j + rotation) % AGENTS;
            const results = ENDPOINTS.map((endpoint) => {
              const ok = random() >= 0.1;
              if (!ok) failures++;
              return ok ? { endpoint, ok, rttMs: 2, at: t } : { endpoint, ok, error: 'timeout after 400 ms', at: t };
            });
            events.push(...tr.ingest({ id: `probe-${a}`, region: 'sg' }, results, t));
          }
          events.push(...tr.tick(t));
        }
        expect(flips(events)).toEqual([]);
        expect([...tr.all().values()].every((h) => h.state === 'up')).toBe(true);
      }),
      { seed, numRuns: 20 },
    );
    // The generator really did fail about one check in ten.
    expect(failures / (CHECKS * 20)).toBeGreaterThan(0.09);
    expect(failures / (CHECKS * 20)).toBeLessThan(0.11);
  });
});

describe('a real outage', () => {
  const scenario = fc
    .record({
      agents: fc.integer({ min: 1, max: 7 }),
      fall: fc.integer({ min: 1, max: 5 }),
      rise: fc.integer({ min: 1, max: 8 }),
      // A running fleet: every agent has reported at least once before the outage.
      warmup: fc.integer({ min: 1, max: 6 }),
      noise: fc.array(fc.boolean(), { minLength: 7 * 30, maxLength: 7 * 30 }),
      minority: fc.nat(),
    })
    .map((s) => ({ ...s, minority: s.minority % (Math.floor((s.agents - 1) / 2) + 1) }));

  it('is detected after exactly `fall` rounds and recovery after exactly `rise`, whatever a minority sees', () => {
    fc.assert(
      fc.property(scenario, ({ agents, fall, rise, warmup, noise, minority }) => {
        // Settle through the first round, so the whole fleet has joined (tested on its own elsewhere).
        const f = fleet(agents, { fall, rise, settleMs: INTERVAL + 1 });
        let n = 0;
        // The first `minority` agents report noise; the majority reports `ok`.
        const round = (ok: boolean) => f.round(Array.from({ length: agents }, (_, i) => (i < minority ? noise[n++ % noise.length] : ok)));
        const health = () => f.tracker.endpoint(EP)!;

        for (let i = 0; i < warmup; i++) round(true);
        expect(health().state).toBe('up');

        for (let k = 1; k <= fall; k++) {
          const events = flips(round(false));
          if (k < fall) {
            expect(events).toEqual([]);
            expect(health()).toMatchObject({ state: 'up', transition: 'falling' });
          } else {
            expect(kinds(events)).toEqual(['endpoint.down']);
            expect(health().state).toBe('down');
            expect(health().transition).toBeUndefined();
            expect(health().since).toBe(f.t);
          }
        }
        for (let k = 1; k <= rise; k++) {
          const events = flips(round(true));
          if (k < rise) {
            expect(events).toEqual([]);
            expect(health()).toMatchObject({ state: 'down', transition: 'rising' });
          } else {
            expect(kinds(events)).toEqual(['endpoint.up']);
            expect(health().state).toBe('up');
          }
        }
      }),
      { seed: 3, numRuns: 300 },
    );
  });
});

// An arbitrary history: agents report (ok or not, on some endpoints) or time passes.
const ENDPOINTS = ['jkt/jkt-a/127.0.1.21', 'jkt/jkt-b/127.0.1.22', 'sg/sg-a/127.0.2.21'];
const step = fc.oneof(
  fc.record({ agent: fc.nat(4), ok: fc.boolean(), endpoints: fc.subarray(ENDPOINTS, { minLength: 1 }), dt: fc.integer({ min: 0, max: 1500 }) }),
  fc.record({ wait: fc.integer({ min: 0, max: 4000 }) }),
);
const history = fc.record({
  fall: fc.integer({ min: 1, max: 4 }),
  rise: fc.integer({ min: 1, max: 6 }),
  steps: fc.array(step, { maxLength: 120 }),
});

type Step = { agent: number; ok: boolean; endpoints: string[]; dt: number } | { wait: number };

function replay(fall: number, rise: number, steps: readonly Step[]) {
  const tr = createHealthTracker({ now: 0, fall, rise });
  tr.setEndpoints(ENDPOINTS, 0);
  let t = 0;
  const events: HealthEvent[] = [];
  const gens: number[] = [];
  for (const s of steps) {
    if ('wait' in s) {
      t += s.wait;
      events.push(...tr.tick(t));
    } else {
      t += s.dt;
      const results = s.endpoints.map((endpoint) => ({ endpoint, ok: s.ok, error: s.ok ? undefined : 'HTTP 503', rttMs: s.ok ? 3 : undefined, at: t }));
      events.push(...tr.ingest({ id: `probe-${s.agent}`, region: 'sg' }, results, t));
    }
    gens.push(tr.generation());
  }
  return { tr, t, events, gens };
}

describe('invariants over arbitrary histories', () => {
  it('silence never causes failover: once every agent is quiet, nothing changes, however long', () => {
    fc.assert(
      fc.property(history, fc.array(fc.integer({ min: 1, max: 60_000 }), { minLength: 1, maxLength: 10 }), ({ fall, rise, steps }, waits) => {
        const { tr, t } = replay(fall, rise, steps);
        const before = tr.all();
        const gen = tr.generation();
        let now = t;
        const later: HealthEvent[] = [];
        for (const w of waits) later.push(...tr.tick((now += w)));
        expect(later.filter((e) => e.kind.startsWith('endpoint.'))).toEqual([]);
        expect(later.filter((e) => e.kind === 'fleet.blind').length).toBeLessThanOrEqual(1);
        for (const [key, h] of tr.all()) {
          expect({ state: h.state, since: h.since, transition: h.transition }).toEqual({
            state: before.get(key)!.state,
            since: before.get(key)!.since,
            transition: before.get(key)!.transition,
          });
        }
        expect(tr.generation()).toBe(gen);
      }),
      { seed: 11, numRuns: 300 },
    );
  });

  it('events tell the whole story: each flip starts from the previous state, since is the last flip, generation never decreases', () => {
    fc.assert(
      fc.property(history, ({ fall, rise, steps }) => {
        const { tr, events, gens } = replay(fall, rise, steps);
        for (let i = 1; i < gens.length; i++) expect(gens[i]).toBeGreaterThanOrEqual(gens[i - 1]);
        for (const key of ENDPOINTS) {
          const mine = flips(events).filter((e) => e.subject === key);
          let state = 'up';
          for (const e of mine) {
            expect(e.oldState).toBe(state);
            expect(e.newState).not.toBe(state);
            state = e.newState;
          }
          expect(tr.endpoint(key)!.state).toBe(state);
          expect(tr.endpoint(key)!.since).toBe(mine.at(-1)?.at ?? 0);
        }
        // Blind and sighted alternate, starting with blind.
        const fleetEvents = events.filter((e) => e.subject === 'fleet').map((e) => e.kind);
        fleetEvents.forEach((k, i) => expect(k).toBe(i % 2 === 0 ? 'fleet.blind' : 'fleet.sighted'));
      }),
      { seed: 12, numRuns: 300 },
    );
  });

  it('a minority can never take an endpoint down while the majority keeps reporting success', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }), { minLength: 1, maxLength: 80 }),
        (fall, minorityViews) => {
          const f = fleet(7, { fall, settleMs: INTERVAL + 1 });
          for (const view of minorityViews) {
            f.round([...view, ...all(4, true)]);
            expect(f.state()).toBe('up');
          }
        },
      ),
      { seed: 13, numRuns: 200 },
    );
  });
});
