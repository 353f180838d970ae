import { describe, expect, it } from 'vitest';
import { ctxOf, host, NOW, pickerContract, seeded, shares } from './contract.case.js';
import { roundRobin } from './round-robin.js';

describe('round-robin', () => {
  pickerContract('round-robin', () => roundRobin());

  it('cycles through the candidates in order, ignoring weights', () => {
    const p = roundRobin();
    const hosts = [host('a', { weight: 5 }), host('b'), host('c')];
    const random = seeded(1);
    const ids = Array.from({ length: 7 }, () => p.pick(hosts, ctxOf(random))!.instance.id);
    expect(ids).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a']);
  });

  it('keeps one cycle per model, so interleaved models each spread evenly', () => {
    const p = roundRobin();
    const chat = [host('c1'), host('c2')];
    const emb = [host('e1'), host('e2')];
    const random = seeded(1);
    const got: string[] = [];
    for (let k = 0; k < 4; k++) {
      got.push(p.pick(chat, ctxOf(random, { model: 'chat' }))!.instance.id);
      p.pick(emb, ctxOf(random, { model: 'emb' }));
    }
    expect(got).toEqual(['c1', 'c2', 'c1', 'c2']);
  });

  it('gives a warming instance a share that ramps with slow start', () => {
    const warm = (ago: number) => [host('old'), host('new', { readySince: NOW - ago })];
    const just = shares(roundRobin(), warm(0), 4000, 7, { slowStartMs: 30_000 });
    const half = shares(roundRobin(), warm(15_000), 4000, 7, { slowStartMs: 30_000 });
    const done = shares(roundRobin(), warm(30_000), 4000, 7, { slowStartMs: 30_000 });
    expect(just.new / 4000).toBeLessThan(0.12);
    expect(half.new / 4000).toBeGreaterThan(just.new / 4000 + 0.1);
    expect(half.new / 4000).toBeLessThan(0.45);
    expect(done.new).toBe(2000);
  });
});
