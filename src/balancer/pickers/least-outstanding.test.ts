import { describe, expect, it } from 'vitest';
import { ctxOf, host, NOW, pickerContract, seeded, shares } from './contract.case.js';
import { leastOutstanding } from './least-outstanding.js';

describe('least-outstanding', () => {
  pickerContract('least-outstanding', () => leastOutstanding());

  it('picks the instance with the fewest requests in flight', () => {
    const hosts = [host('a', { outstanding: 4 }), host('b', { outstanding: 1 }), host('c', { outstanding: 2 })];
    expect(shares(leastOutstanding(), hosts, 100)).toEqual({ a: 0, b: 100, c: 0 });
  });

  it('breaks ties at random, in proportion to weight', () => {
    const even = shares(leastOutstanding(), [host('a', { outstanding: 2 }), host('b', { outstanding: 2 }), host('c', { outstanding: 3 })], 2000);
    expect(even.c).toBe(0);
    expect(even.a / 2000).toBeGreaterThan(0.45);
    expect(even.a / 2000).toBeLessThan(0.55);
  });

  it('lets a heavier instance carry proportionally more in flight', () => {
    // (3+1)/2 = 2 beats (2+1)/1 = 3
    expect(shares(leastOutstanding(), [host('big', { weight: 2, outstanding: 3 }), host('small', { outstanding: 2 })], 50)).toEqual({ big: 50, small: 0 });
  });

  it('spreads load evenly as requests pile up', () => {
    const p = leastOutstanding();
    const hosts = [host('a'), host('b'), host('c')];
    const random = seeded(3);
    for (let k = 0; k < 30; k++) p.pick(hosts, ctxOf(random))!.outstanding++;
    expect(hosts.map((h) => h.outstanding)).toEqual([10, 10, 10]);
  });

  it('holds a warming instance back until the others are busier', () => {
    const fresh = host('new', { readySince: NOW, outstanding: 0 });
    expect(leastOutstanding().pick([host('old', { outstanding: 5 }), fresh], ctxOf(seeded(1), { slowStartMs: 30_000 }))!.instance.id).toBe('old');
    expect(leastOutstanding().pick([host('old', { outstanding: 12 }), fresh], ctxOf(seeded(1), { slowStartMs: 30_000 }))!.instance.id).toBe('new');
  });
});
