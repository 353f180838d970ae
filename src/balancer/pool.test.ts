import { describe, expect, it } from 'vitest';
import { seeded } from './pickers/contract.case.js';
import { roundRobin } from './pickers/round-robin.js';
import { weighted } from './pickers/weighted.js';
import { createPicker, createPool, effectiveWeight, isFailure, type PoolOptions } from './pool.js';
import type { Instance, InstanceState } from './types.js';

const inst = (id: string, over: Partial<Instance> = {}): Instance => ({ id, url: `http://${id}:8000`, weight: 1, models: ['llama'], kinds: ['chat', 'completion'], ...over });

function setUp(over: Partial<PoolOptions> = {}) {
  const clock = { t: 1_000_000 };
  const pool = createPool({ instances: [inst('a'), inst('b')], picker: roundRobin(), now: () => clock.t, random: seeded(1), initiallyReady: true, ...over });
  const byId = (id: string) => pool.states().find((s) => s.instance.id === id)!;
  const fail = (s: InstanceState, status = 503) => {
    pool.acquire(s);
    pool.release(s, { ok: false, status, durationMs: 5 });
  };
  const succeed = (s: InstanceState) => {
    pool.acquire(s);
    pool.release(s, { ok: true, status: 200, durationMs: 5 });
  };
  const picks = (n: number, ctx = {}) => Array.from({ length: n }, () => pool.pick(ctx)?.instance.id);
  return { pool, clock, byId, fail, succeed, picks };
}

describe('pool: content-aware filtering', () => {
  const instances = [
    inst('chat1', { models: ['llama-70b'], kinds: ['chat', 'completion'] }),
    inst('chat2', { models: ['llama-70b', 'llama-8b'], kinds: ['chat'] }),
    inst('emb', { models: ['bge-m3'], kinds: ['embeddings'] }),
  ];

  it('sends embeddings and chat to their own instances', () => {
    const { picks } = setUp({ instances });
    expect(new Set(picks(10, { model: 'bge-m3', kind: 'embeddings' }))).toEqual(new Set(['emb']));
    expect(new Set(picks(10, { model: 'llama-70b', kind: 'chat' }))).toEqual(new Set(['chat1', 'chat2']));
    expect(new Set(picks(10, { model: 'llama-70b', kind: 'completion' }))).toEqual(new Set(['chat1']));
    expect(new Set(picks(10, { model: 'llama-8b' }))).toEqual(new Set(['chat2']));
    expect(new Set(picks(10, { kind: 'embeddings' }))).toEqual(new Set(['emb']));
  });

  it('picks nothing for a model or kind no instance serves, and tells that apart from "all down"', () => {
    const { pool, picks } = setUp({ instances });
    expect(picks(1, { model: 'gpt-4' })).toEqual([undefined]);
    expect(picks(1, { model: 'bge-m3', kind: 'chat' })).toEqual([undefined]);
    expect(pool.eligible({ model: 'gpt-4' })).toEqual([]);
    pool.setReady('emb', false);
    expect(picks(1, { model: 'bge-m3' })).toEqual([undefined]);
    expect(pool.eligible({ model: 'bge-m3' }).map((s) => s.instance.id)).toEqual(['emb']);
  });
});

describe('pool: readiness and slow start', () => {
  it('starts instances not ready by default, and gives traffic only to ready ones', () => {
    const { pool, picks } = setUp({ initiallyReady: undefined });
    expect(pool.states().every((s) => !s.ready)).toBe(true);
    expect(picks(1)).toEqual([undefined]);
    expect(pool.setReady('b', true)).toBe(true);
    expect(pool.setReady('b', true)).toBe(false);
    expect(new Set(picks(10))).toEqual(new Set(['b']));
    pool.setReady('a', true);
    pool.setReady('b', false);
    expect(new Set(picks(10))).toEqual(new Set(['a']));
    expect(pool.setReady('nope', true)).toBe(false);
  });

  it('ramps a newly ready instance from ~10 % to full weight over the window', () => {
    const { pool, clock, byId } = setUp({ picker: weighted(), slowStartMs: 10_000, initiallyReady: undefined });
    pool.setReady('a', true, clock.t - 60_000);
    pool.setReady('b', true);
    const share = () => {
      let b = 0;
      for (let k = 0; k < 1000; k++) if (pool.pick({})!.instance.id === 'b') b++;
      return b / 1000;
    };
    expect(effectiveWeight(byId('b'), clock.t, 10_000)).toBeCloseTo(0.1);
    expect(share()).toBeCloseTo(0.1 / 1.1, 1);
    clock.t += 5_000;
    expect(effectiveWeight(byId('b'), clock.t, 10_000)).toBeCloseTo(0.55);
    expect(share()).toBeCloseTo(0.55 / 1.55, 1);
    clock.t += 5_000;
    expect(share()).toBeCloseTo(0.5, 2);
  });

  it('never gives a drained or misconfigured weight any share', () => {
    const s = (weight: number) => ({ instance: inst('x', { weight }), ready: true, ejections: 0, consecutiveFailures: 0, outstanding: 0, readySince: 0 });
    for (const w of [0, -1, Number.NaN]) expect(effectiveWeight(s(w), 1_000, 10_000)).toBe(0);
    expect(effectiveWeight(s(4), 0, 10_000)).toBeCloseTo(0.4);
    expect(effectiveWeight(s(4), 10_000, 10_000)).toBe(4);
    expect(effectiveWeight(s(4), 10, 0)).toBe(4); // no window, no ramp
  });

  it('restarts the ramp when an instance comes back from not ready', () => {
    const { pool, clock, byId } = setUp({ slowStartMs: 10_000 });
    pool.setReady('a', false);
    clock.t += 1;
    pool.setReady('a', true);
    expect(byId('a').readySince).toBe(clock.t);
    expect(effectiveWeight(byId('a'), clock.t, 10_000)).toBeCloseTo(0.1);
  });
});

describe('pool: outlier ejection', () => {
  it('counts 5xx, timeouts and dead connections as failures, not 4xx', () => {
    expect(isFailure({ ok: false, status: 503, durationMs: 1 })).toBe(true);
    expect(isFailure({ ok: false, durationMs: 1 })).toBe(true);
    expect(isFailure({ ok: false, timeout: true, durationMs: 1 })).toBe(true);
    expect(isFailure({ ok: false, status: 400, durationMs: 1 })).toBe(false);
    expect(isFailure({ ok: false, status: 429, durationMs: 1 })).toBe(false);
    expect(isFailure({ ok: true, status: 200, durationMs: 1 })).toBe(false);
  });

  it('ejects after consecutive failures, with a back-off that doubles, and re-admits half-open (more in pool/outliers.test.ts)', () => {
    const { pool, clock, byId, fail, succeed, picks } = setUp({ outlier: { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 3000 } });
    fail(byId('a'));
    fail(byId('a'));
    succeed(byId('a')); // a success breaks the run
    fail(byId('a'));
    fail(byId('a'));
    expect(byId('a').ejectedUntil).toBeUndefined();
    fail(byId('a'));
    expect(byId('a').ejectedUntil).toBe(clock.t + 1000);
    expect(new Set(picks(6))).toEqual(new Set(['b']));
    expect(pool.capacity()).toMatchObject({ ready: 1, ejected: 1 });

    clock.t += 1000; // half-open: back in rotation
    expect(new Set(picks(6))).toEqual(new Set(['a', 'b']));
    fail(byId('a'));
    expect(byId('a').ejectedUntil).toBeUndefined(); // one failure is not enough evidence (10 % random errors would do it)
    fail(byId('a')); // the second before any success is, for twice as long
    expect(byId('a').ejectedUntil).toBe(clock.t + 2000);
    expect(byId('a').ejections).toBe(2);
    clock.t += 2000;
    fail(byId('a'));
    fail(byId('a'));
    expect(byId('a').ejectedUntil).toBe(clock.t + 3000); // capped
  });

  it('ejects on timeouts, and ignores late failures from before the ejection', () => {
    const { pool, clock, byId } = setUp({ outlier: { consecutiveFailures: 2 } });
    const a = byId('a');
    for (let k = 0; k < 4; k++) pool.acquire(a);
    pool.release(a, { ok: false, timeout: true, durationMs: 60_000 });
    pool.release(a, { ok: false, timeout: true, durationMs: 60_000 });
    const until = a.ejectedUntil;
    expect(until).toBe(clock.t + 1000);
    pool.release(a, { ok: false, status: 502, durationMs: 5 });
    pool.release(a, { ok: false, status: 502, durationMs: 5 });
    expect(a.ejectedUntil).toBe(until);
    expect(a.ejections).toBe(1);
    expect(a.outstanding).toBe(0);
  });
});

describe('pool: accounting', () => {
  it('tracks outstanding requests and a response-time EWMA (alpha 0.3) that failures cannot lower', () => {
    const { pool, byId } = setUp();
    const a = byId('a');
    pool.acquire(a);
    pool.acquire(a);
    expect(a.outstanding).toBe(2);
    pool.release(a, { ok: true, status: 200, durationMs: 100 });
    expect(a.ewmaMs).toBe(100);
    pool.release(a, { ok: true, status: 200, durationMs: 200 });
    expect(a.ewmaMs).toBeCloseTo(130);
    expect(a.outstanding).toBe(0);
    pool.release(a, { ok: true, durationMs: 1 }); // unbalanced release stays at 0
    expect(a.outstanding).toBe(0);
    const before = a.ewmaMs!;
    pool.release(a, { ok: false, status: 500, durationMs: 1 });
    expect(a.ewmaMs).toBeCloseTo(before);
  });

  it('keeps the live state of unchanged instances across a config change', () => {
    const { pool, byId } = setUp();
    const old = byId('a');
    pool.acquire(old);
    old.ewmaMs = 42;
    pool.setInstances([inst('a', { weight: 3 }), inst('b', { url: 'http://elsewhere:8000' }), inst('c')]);
    expect(byId('a')).toMatchObject({ ready: true, outstanding: 1, ewmaMs: 42 });
    expect(byId('a').instance.weight).toBe(3);
    expect(byId('b')).toMatchObject({ ready: true, outstanding: 0 }); // moved: a new server, judged afresh (initiallyReady here)
    expect(byId('c').ready).toBe(true);
    pool.release(old, { ok: true, durationMs: 10 }); // an in-flight request of before the change
    expect(byId('a').outstanding).toBe(0);
    expect(() => pool.setInstances([inst('x'), inst('x')])).toThrow(/duplicate/);
  });

  it('reconfigured while requests are in flight: removed instances finish theirs, added ones join, weights and strategy apply to new picks', () => {
    const { pool, byId, picks } = setUp({ instances: [inst('a'), inst('b')] });
    const a = byId('a');
    const b = byId('b');
    pool.acquire(a);
    pool.acquire(b);
    pool.acquire(b);

    // b removed, c added, a re-weighted; and the strategy changed from round-robin to weighted.
    pool.setInstances([inst('a', { weight: 9 }), inst('c', { weight: 1 })]);
    pool.reconfigure({ picker: weighted(), slowStartMs: 0, maxConcurrency: 8 });
    expect(pool.states().map((s) => s.instance.id)).toEqual(['a', 'c']);
    expect(byId('a')).toMatchObject({ outstanding: 1, instance: { weight: 9 } });
    // New picks never go to b, and follow the new weights (9:1).
    const ids = picks(1000);
    expect(ids).not.toContain('b');
    const share = ids.filter((x) => x === 'a').length / ids.length;
    expect(share).toBeGreaterThan(0.8);
    expect(share).toBeLessThan(0.97);
    // b's two requests finish on b: their outcomes are taken and change nothing of the new set.
    pool.release(b, { ok: false, status: 503, durationMs: 5 });
    pool.release(b, { ok: true, status: 200, durationMs: 5 });
    expect(b.outstanding).toBe(0);
    expect(pool.states().map((s) => s.instance.id)).toEqual(['a', 'c']);
    pool.release(a, { ok: true, status: 200, durationMs: 5 });
    expect(byId('a').outstanding).toBe(0);
    // The new concurrency cap in the capacity report: 2 instances × 8.
    expect(pool.capacity()).toMatchObject({ instances: 2, ready: 2, outstanding: 0, freeConcurrency: 16 });
  });

  it('summarises capacity for the report to control', () => {
    const { pool, clock, byId } = setUp({ instances: [inst('a'), inst('b'), inst('c')], maxConcurrency: 4 });
    pool.acquire(byId('a'));
    pool.acquire(byId('a'));
    pool.acquire(byId('b'));
    pool.setReady('c', false);
    expect(pool.capacity()).toEqual({ instances: 3, ready: 2, ejected: 0, outstanding: 3, freeConcurrency: 5, kvHeadroom: undefined });
    pool.updateGpu('a', { running: 2, waiting: 0, kvCacheUsage: 0.2, memoryExhausted: false, scrapedAt: clock.t });
    pool.updateGpu('b', { running: 1, waiting: 0, kvCacheUsage: 0.6, memoryExhausted: false, scrapedAt: clock.t });
    pool.updateGpu('c', { running: 0, waiting: 0, kvCacheUsage: 0, memoryExhausted: false, scrapedAt: clock.t }); // not ready: left out
    expect(pool.capacity().kvHeadroom).toBeCloseTo(0.6);
    clock.t += 6_000;
    pool.updateGpu('b', { running: 1, waiting: 0, kvCacheUsage: 0.6, memoryExhausted: true, scrapedAt: clock.t });
    expect(pool.capacity().kvHeadroom).toBe(0); // a's gauges are stale; b has no memory left
    expect(setUp().pool.capacity().freeConcurrency).toBeUndefined();
  });

  it('hands the picker its slow-start window and a gpu picker its gauges', () => {
    const { pool, clock, picks } = setUp({ picker: createPicker('gpu') });
    pool.updateGpu('a', { running: 0, waiting: 0, kvCacheUsage: 0.9, memoryExhausted: false, scrapedAt: clock.t });
    pool.updateGpu('b', { running: 0, waiting: 0, kvCacheUsage: 0.1, memoryExhausted: false, scrapedAt: clock.t });
    expect(new Set(picks(5))).toEqual(new Set(['b']));
    pool.updateGpu('b', { running: 0, waiting: 0, kvCacheUsage: 0.1, memoryExhausted: true, scrapedAt: clock.t });
    expect(new Set(picks(5))).toEqual(new Set(['a']));
  });
});

describe('pool: work in flight and service time per unit', () => {
  it('keeps the work given to acquire until its release, and learns ms per token and per embeddings call apart', () => {
    const { pool, clock, byId } = setUp({ instances: [inst('a', { kinds: ['chat', 'embeddings'] })] });
    const a = byId('a');
    const gen = { kind: 'chat' as const, tokens: 100, at: clock.t };
    const emb = { kind: 'embeddings' as const, at: clock.t };
    pool.acquire(a, gen);
    pool.acquire(a, emb);
    expect(byId('a').inflight).toEqual([gen, emb]);
    pool.release(a, { ok: true, status: 200, durationMs: 20, work: emb });
    pool.release(a, { ok: true, status: 200, durationMs: 1000, work: gen });
    expect(byId('a').inflight).toEqual([]);
    expect(byId('a').unitMs).toEqual({ generation: 10, embeddings: 20 });
    expect(byId('a').unitEwma).toEqual({ generation: 10, embeddings: 20 });
  });

  it('does not learn speed from failures or from clients that left', () => {
    const { pool, clock, byId } = setUp();
    const a = byId('a');
    for (const o of [
      { ok: false, status: 500, durationMs: 1 },
      { ok: true, status: 200, durationMs: 1, cancelled: true },
    ]) {
      const work = { kind: 'chat' as const, tokens: 100, at: clock.t };
      pool.acquire(a, work);
      pool.release(a, { ...o, work });
    }
    expect(byId('a').unitMs).toBeUndefined();
    expect(byId('a').inflight).toEqual([]);
  });

  it('reads its batch size from gauges taken while full, and notes its own outstanding at each scrape', () => {
    const { pool, clock, byId } = setUp();
    pool.acquire(byId('a'));
    pool.updateGpu('a', { running: 2, waiting: 0, kvCacheUsage: 0.5, memoryExhausted: false, scrapedAt: clock.t });
    expect(byId('a').slots).toBeUndefined();
    expect(byId('a').outstandingAtScrape).toBe(1);
    pool.updateGpu('a', { running: 5, waiting: 3, kvCacheUsage: 1, memoryExhausted: false, scrapedAt: clock.t });
    pool.updateGpu('a', { running: 4, waiting: 0, kvCacheUsage: 1, memoryExhausted: false, scrapedAt: clock.t });
    expect(byId('a').slots).toBe(4);
  });
});
