import { describe, expect, it } from 'vitest';
import { createCapacityTracker, saturationOf, type CapacityReport } from './capacity.js';

const report = (over: Partial<CapacityReport> = {}): CapacityReport => ({
  region: 'jkt',
  balancer: 'b1',
  instances: 3,
  ready: 3,
  outstanding: 0,
  freeConcurrency: 48,
  queueDepth: 0,
  at: 0,
  ...over,
});

describe('saturationOf', () => {
  it.each([
    { name: 'idle', r: [report()], want: 0 },
    { name: 'half busy', r: [report({ outstanding: 24, freeConcurrency: 24 })], want: 0.5 },
    { name: 'full and queueing', r: [report({ outstanding: 48, freeConcurrency: 0, queueDepth: 10 })], want: 1 },
    { name: 'KV cache nearly full dominates', r: [report({ outstanding: 4, freeConcurrency: 44, kvHeadroom: 0.05 })], want: 0.95 },
    { name: 'no ready instance', r: [report({ ready: 0, freeConcurrency: 0 })], want: 1 },
    { name: 'two balancers add up', r: [report({ outstanding: 48, freeConcurrency: 0 }), report({ balancer: 'b2', outstanding: 0, freeConcurrency: 48 })], want: 0.5 },
  ])('$name → $want', ({ r, want }) => expect(saturationOf(r)).toBeCloseTo(want, 5));
});

describe('capacity tracker', () => {
  it('sheds a growing share past the high mark, with hysteresis, and recovers', () => {
    const t = createCapacityTracker();
    const at = (outstanding: number, now: number) => t.report(report({ outstanding, freeConcurrency: 48 - outstanding, at: now }), now);
    expect(at(38, 0)).toEqual([]); // 0.79: below high
    expect(t.current().jkt.shed).toBe(0);
    const start = at(42, 1); // 0.875 ≥ 0.85
    expect(start).toMatchObject([{ kind: 'capacity.shedding', from: 0, to: 0.5 }]); // (0.875 − 0.7) / 0.3 ≈ 0.6, capped at 0.5
    expect(t.current().jkt.shed).toBeGreaterThan(0);
    expect(at(48, 2)).toEqual([]); // capped at maxShed 0.5 already
    expect(t.current().jkt.shed).toBe(0.5);
    at(37, 3); // 0.77: still above low: keeps shedding, a smaller share
    expect(t.current().jkt.shed).toBeGreaterThan(0);
    expect(t.current().jkt.shed).toBeLessThan(0.5);
    const stop = at(30, 4); // 0.625 ≤ 0.7: stops
    expect(stop).toMatchObject([{ kind: 'capacity.recovered', to: 0 }]);
    expect(at(40, 5)).toEqual([]); // 0.83 < high: does not restart
  });

  it('forgets a silent region: capacity unknown, not empty, and not shedding', () => {
    const t = createCapacityTracker({ staleMs: 1000 });
    t.report(report({ outstanding: 48, freeConcurrency: 0, queueDepth: 5, at: 0 }), 0);
    expect(t.current().jkt.shed).toBe(0.5);
    expect(t.tick(500)).toEqual([]);
    expect(t.tick(1500)).toMatchObject([{ kind: 'capacity.unknown', region: 'jkt' }]);
    expect(t.current().jkt).toBeUndefined();
  });
});

describe('capacity tracker while a region scales up', () => {
  const pool = (warming: number, current: number) => ({ model: 'm', desired: 3, current, warming, draining: 0, ready: current - warming, scaling: 'local' as const });

  it('says the excess spills to the next region while instances warm, and that the new ones took it back', () => {
    const t = createCapacityTracker();
    // One instance of 16 slots, full and queueing; two more warming.
    const shed = t.report(report({ instances: 3, ready: 1, outstanding: 16, freeConcurrency: 0, queueDepth: 20, pools: [pool(2, 3)] }), 0);
    expect(shed).toMatchObject([{ kind: 'capacity.shedding' }]);
    expect(shed[0].reason).toMatch(/scaling up, 2 instances warming: the excess goes to the next region with headroom until they join/);
    // They joined: three ready, a third busy.
    const back = t.report(report({ instances: 3, ready: 3, outstanding: 16, freeConcurrency: 32, pools: [pool(0, 3)] }), 1000);
    expect(back).toMatchObject([{ kind: 'capacity.recovered', to: 0 }]);
    expect(back[0].reason).toMatch(/2 new instances joined and take the traffic back/);
  });

  it('without scaling the reasons say nothing of it', () => {
    const t = createCapacityTracker();
    const [shed] = t.report(report({ ready: 1, outstanding: 16, freeConcurrency: 0, queueDepth: 20 }), 0);
    expect(shed.reason).not.toMatch(/scaling|joined/);
    const [back] = t.report(report({ ready: 1, outstanding: 2, freeConcurrency: 14 }), 1000);
    expect(back.reason).not.toMatch(/scaling|joined/);
  });
});
