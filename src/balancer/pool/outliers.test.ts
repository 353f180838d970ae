// Ejection through the pool: the evidence it needs, the share of the pool it
// may take, half-open re-admission and the back-off's decay.
import { describe, expect, it } from 'vitest';
import { seeded } from '../pickers/contract.case.js';
import { roundRobin } from '../pickers/round-robin.js';
import { createPool, type PoolOptions } from '../pool.js';
import type { Instance } from '../types.js';
import { isEjected, maxEjected } from './outliers.js';

const inst = (id: string): Instance => ({ id, url: `http://${id}:8000`, weight: 1, models: ['llama'], kinds: ['chat'] });

function setUp(n: number, over: Partial<PoolOptions> = {}) {
  const clock = { t: 1_000_000 };
  const ids = Array.from({ length: n }, (_, i) => `i${i}`);
  const pool = createPool({ instances: ids.map(inst), picker: roundRobin(), now: () => clock.t, initiallyReady: true, ...over });
  const byId = (id: string) => pool.states().find((s) => s.instance.id === id)!;
  const outcome = (id: string, ok: boolean, durationMs = 5) => {
    const s = byId(id);
    pool.acquire(s);
    pool.release(s, ok ? { ok, status: 200, durationMs } : { ok, status: 500, durationMs });
  };
  const times = (k: number, f: () => void) => {
    for (let i = 0; i < k; i++) f();
  };
  const ejected = () => pool.states().filter((s) => isEjected(s, clock.t)).map((s) => s.instance.id);
  return { pool, clock, byId, outcome, times, ejected };
}

describe('outliers: evidence', () => {
  it('ejects a new instance after 5 failures, one that served well only once half of its last 20 failed', () => {
    const { byId, outcome, times } = setUp(2);
    times(5, () => outcome('i0', false));
    expect(byId('i0').ejectedUntil).toBeDefined();

    times(20, () => outcome('i1', true));
    times(9, () => outcome('i1', false));
    expect(byId('i1').ejectedUntil).toBeUndefined(); // 9 in a row, but 9 of the last 20
    outcome('i1', false);
    expect(byId('i1').ejectedUntil).toBeUndefined(); // the other one is out: the share (1 of 2)
  });

  it('the failure share: 10 of the last 20', () => {
    const { byId, outcome, times } = setUp(2);
    times(20, () => outcome('i0', true));
    times(9, () => outcome('i0', false));
    expect(byId('i0').ejectedUntil).toBeUndefined();
    outcome('i0', false);
    expect(byId('i0').ejectedUntil).toBeDefined();
  });

  it('rarely ejects for 10 % random errors: a few in a million requests, where 5 in a row alone would make ~8', () => {
    const random = seeded(7);
    const { clock, byId, outcome } = setUp(4);
    let ejections = 0;
    for (let k = 0; k < 1_000_000; k++) {
      const id = `i${k % 4}`;
      clock.t += 1;
      const was = byId(id).ejectedUntil;
      outcome(id, random() >= 0.1);
      if (byId(id).ejectedUntil !== undefined && byId(id).ejectedUntil !== was) ejections++;
    }
    expect(ejections).toBeLessThanOrEqual(2);
  });
});

describe('outliers: the share of the pool', () => {
  it.each([
    [1, 1],
    [2, 1],
    [3, 1],
    [4, 2],
    [8, 4],
  ])('of %i instances, at most %i ejected at once, even when every one fails', (n, allowed) => {
    expect(maxEjected(n, 50)).toBe(allowed);
    const { clock, outcome, ejected } = setUp(n);
    let most = 0;
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < n; i++) {
        outcome(`i${i}`, false);
        most = Math.max(most, ejected().length);
      }
      clock.t += 250; // ejections end and others start
    }
    expect(most).toBe(allowed);
  });

  it('follows maxEjectionPercent, and changes it live', () => {
    const { pool, outcome, times, ejected } = setUp(8, { outlier: { maxEjectionPercent: 25 } });
    for (let i = 0; i < 8; i++) times(5, () => outcome(`i${i}`, false));
    expect(ejected()).toEqual(['i0', 'i1']);
    pool.reconfigure({ outlier: { maxEjectionPercent: 100 } });
    for (let i = 2; i < 8; i++) outcome(`i${i}`, false);
    expect(ejected()).toHaveLength(7); // never the last one serving
  });

  it('never ejects the last instance serving while the others are out, but a pool of one, as Envoy', () => {
    const { pool, outcome, times, ejected } = setUp(4);
    pool.setReady('i2', false);
    pool.setReady('i3', false);
    times(5, () => outcome('i0', false));
    times(5, () => outcome('i1', false));
    expect(ejected()).toEqual(['i0']);
    expect(pool.capacity().ready).toBe(1);

    const one = setUp(1);
    one.times(5, () => one.outcome('i0', false));
    expect(one.ejected()).toEqual(['i0']);
  });
});

describe('outliers: half-open and the back-off', () => {
  it('re-ejects on the second failure before a success, and its first success ends the probation', () => {
    const { clock, byId, outcome, times } = setUp(2, { outlier: { baseEjectionMs: 1000 } });
    times(5, () => outcome('i0', false));
    clock.t = byId('i0').ejectedUntil!;
    outcome('i0', false);
    expect(byId('i0').ejectedUntil).toBeUndefined();
    outcome('i0', false);
    expect(byId('i0').ejectedUntil).toBe(clock.t + 2000);

    clock.t += 2000;
    outcome('i0', true);
    times(4, () => outcome('i0', false));
    expect(byId('i0').ejectedUntil).toBeUndefined(); // out of probation: 5 in a row again
    outcome('i0', false);
    expect(byId('i0').ejectedUntil).toBe(clock.t + 4000); // the back-off did not reset on one success
  });

  it('loses one step of back-off per 10 s in service', () => {
    const { clock, byId, outcome, times } = setUp(2, { outlier: { baseEjectionMs: 1000, maxEjectionMs: 30_000 } });
    for (let k = 0; k < 4; k++) {
      times(5, () => outcome('i0', false));
      clock.t = byId('i0').ejectedUntil!;
    }
    expect(byId('i0').ejections).toBe(4); // 1 + 2 + 4 + 8 s
    outcome('i0', true);
    clock.t += 25_000; // two steps off
    times(5, () => outcome('i0', false));
    expect(byId('i0').ejectedUntil).toBe(clock.t + 4000);
    expect(byId('i0').ejections).toBe(3);
  });

  it('ignores the outcomes of requests sent before the ejection, even when they end after it', () => {
    const { clock, byId, outcome, times } = setUp(2, { outlier: { baseEjectionMs: 1000 } });
    times(5, () => outcome('i0', false));
    clock.t = byId('i0').ejectedUntil! + 10;
    times(3, () => outcome('i0', false, 2000)); // sent 2 s ago, before the ejection began
    expect(byId('i0').ejectedUntil).toBeUndefined();
    expect(byId('i0').ejections).toBe(1);
  });
});
