import { describe, expect, it } from 'vitest';
import { createPopularity } from './popularity.js';

describe('prefix popularity', () => {
  it("gives each key its share of the last window's requests, forgetting what left the window", () => {
    const p = createPopularity(10);
    for (let i = 0; i < 10; i++) p.add(i < 8 ? 1 : 2);
    expect(p.share(1)).toBeCloseTo(0.8);
    expect(p.share(2)).toBeCloseTo(0.2);
    // Ten requests of nothing held: key 1 and 2 leave the window.
    for (let i = 0; i < 10; i++) p.add(undefined);
    expect(p.share(1)).toBe(0);
    expect(p.share(2)).toBe(0);
  });

  it('counts over the requests seen while the window is not yet full', () => {
    const p = createPopularity(512);
    expect(p.share(7)).toBe(0);
    p.add(7);
    p.add(undefined);
    expect(p.share(7)).toBe(0.5);
  });

  it('holds at most a window of keys, whatever comes', () => {
    const p = createPopularity(64);
    for (let i = 0; i < 100_000; i++) p.add(i);
    let held = 0;
    for (let i = 0; i < 100_000; i++) if (p.share(i) > 0) held++;
    expect(held).toBe(64);
  });
});
