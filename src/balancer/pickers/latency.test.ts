import { describe, expect, it } from 'vitest';
import { host, pickerContract, shares } from './contract.case.js';
import { latency } from './latency.js';

describe('latency', () => {
  pickerContract('latency', () => latency());

  it('prefers fast instances by a clear margin (power of two choices)', () => {
    const got = shares(latency(), [host('fast', { ewmaMs: 10 }), host('mid', { ewmaMs: 100 }), host('slow', { ewmaMs: 1000 })], 3000, 42);
    // The fast one wins whenever it is drawn (2/3); the slow one never wins.
    expect(got.fast / 3000).toBeGreaterThan(0.6);
    expect(got.mid / 3000).toBeGreaterThan(0.28);
    expect(got.mid / 3000).toBeLessThan(0.4);
    expect(got.slow).toBe(0);
  });

  it('weighs response time by requests in flight', () => {
    // 10 ms × 21 in flight = 210 > 100 ms × 1
    expect(shares(latency(), [host('fast', { ewmaMs: 10, outstanding: 20 }), host('slow', { ewmaMs: 100 })], 100)).toEqual({ fast: 0, slow: 100 });
  });

  it('tries an unmeasured instance as if it were the fastest, but only until it is busy', () => {
    const idle = shares(latency(), [host('new'), host('known', { ewmaMs: 50, outstanding: 1 })], 100);
    expect(idle).toEqual({ new: 100, known: 0 });
    // assumed 50 ms × 4 = 200 > 100 ms × 1
    const busy = shares(latency(), [host('new', { outstanding: 3 }), host('known', { ewmaMs: 100 })], 100);
    expect(busy).toEqual({ new: 0, known: 100 });
  });

  it('draws its two choices by weight', () => {
    // Equal cost: the first draw wins, and it is drawn by weight (8 of 10).
    const got = shares(latency(), [host('heavy', { weight: 8, ewmaMs: 50 }), host('a', { ewmaMs: 50 }), host('b', { ewmaMs: 50 })], 4000, 5);
    expect(got.heavy / 4000).toBeGreaterThan(0.75);
    expect(got.heavy / 4000).toBeLessThan(0.85);
  });
});
