import { describe, expect, it } from 'vitest';
import { ctxOf, host, NOW, pickerContract, seeded, shares } from './contract.case.js';
import { weighted } from './weighted.js';

describe('weighted', () => {
  pickerContract('weighted', () => weighted());

  it('gives each instance exactly its share of weight', () => {
    const got = shares(weighted(), [host('a', { weight: 5 }), host('b', { weight: 3 }), host('c', { weight: 2 })], 1000);
    expect(got).toEqual({ a: 500, b: 300, c: 200 });
  });

  it('spreads a heavy instance out rather than in bursts (smooth, nginx order)', () => {
    const p = weighted();
    const hosts = [host('a', { weight: 5 }), host('b'), host('c')];
    const random = seeded(1);
    const ids = Array.from({ length: 7 }, () => p.pick(hosts, ctxOf(random))!.instance.id).join('');
    expect(ids).toBe('aabacaa');
  });

  it('scales a warming instance by its slow-start ramp', () => {
    const hosts = (ago: number) => [host('old', { weight: 1 }), host('new', { weight: 1, readySince: NOW - ago })];
    // 10 % of weight at the start, 55 % half-way: shares 0.1/1.1 and 0.55/1.55.
    expect(shares(weighted(), hosts(0), 1100, 1, { slowStartMs: 10_000 }).new).toBe(100);
    expect(shares(weighted(), hosts(5_000), 1550, 1, { slowStartMs: 10_000 }).new).toBe(550);
    expect(shares(weighted(), hosts(10_000), 1000, 1, { slowStartMs: 10_000 }).new).toBe(500);
  });

  it('forgets instances that left, and serves the rest in proportion', () => {
    const p = weighted();
    const random = seeded(1);
    const a = host('a', { weight: 2 });
    const b = host('b', { weight: 1 });
    for (let k = 0; k < 5; k++) p.pick([a, b, host('gone', { weight: 9 })], ctxOf(random));
    const got = { a: 0, b: 0 };
    for (let k = 0; k < 300; k++) got[p.pick([a, b], ctxOf(random))!.instance.id as 'a' | 'b']++;
    expect(got).toEqual({ a: 200, b: 100 });
  });
});
