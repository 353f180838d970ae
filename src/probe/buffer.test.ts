import { describe, expect, it } from 'vitest';
import { createResultBuffer } from './buffer.js';
import type { ProbeResult } from './types.js';

const r = (endpoint: string, at: number): ProbeResult => ({ endpoint, ok: true, rttMs: 1, at });

describe('result buffer', () => {
  it('hands out everything fresh and forgets only what was acknowledged', () => {
    let now = 1000;
    const b = createResultBuffer({ windowMs: 500, now: () => now });
    b.push([r('a', 1000), r('b', 1000)]);
    const first = b.peek();
    expect(first.results.map((x) => x.endpoint)).toEqual(['a', 'b']);
    b.push([r('c', 1010)]); // arrives while the report is in flight
    b.ack(first.mark);
    expect(b.peek().results.map((x) => x.endpoint)).toEqual(['c']);
    expect(b.size).toBe(1);
    now = 1020;
    b.ack(b.peek().mark);
    expect(b.size).toBe(0);
    expect(b.dropped).toBe(0);
  });

  it('drops results older than the window, oldest first, and counts them', () => {
    let now = 0;
    const b = createResultBuffer({ windowMs: 300, now: () => now });
    for (now = 0; now <= 1000; now += 100) b.push([r('a', now)]);
    now = 1000;
    expect(b.peek().results.map((x) => x.at)).toEqual([700, 800, 900, 1000]);
    expect(b.dropped).toBe(7);
  });

  it('ages results out while a report is in flight without losing newer ones', () => {
    let now = 0;
    const b = createResultBuffer({ windowMs: 100, now: () => now });
    b.push([r('a', 0)]);
    const inFlight = b.peek();
    now = 150;
    b.push([r('b', 150)]); // prunes 'a'
    b.ack(inFlight.mark);
    expect(b.peek().results.map((x) => x.endpoint)).toEqual(['b']);
  });

  it('holds at most maxResults', () => {
    const b = createResultBuffer({ windowMs: 60_000, maxResults: 3, now: () => 0 });
    b.push([r('a', 0), r('b', 0), r('c', 0), r('d', 0), r('e', 0)]);
    expect(b.peek().results.map((x) => x.endpoint)).toEqual(['c', 'd', 'e']);
    expect(b.dropped).toBe(2);
  });
});
