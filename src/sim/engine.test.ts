import { describe, expect, it } from 'vitest';
import { batchSlowdown, createEngine } from './engine.js';

describe('batchSlowdown', () => {
  it.each([
    [1, 4, 1],
    [4, 4, 1],
    [8, 4, 2],
    [16, 4, 4],
    [3, 1, 3],
  ])('%i running over a knee of %i: each sequence %fx slower', (running, knee, factor) => {
    expect(batchSlowdown(running, knee)).toBe(factor);
  });
});

describe('engine admission', () => {
  // A long ttft keeps admitted sequences holding their share while the test looks.
  const engine = (kvCacheTokens: number, maxRunning = 8) =>
    createEngine({ model: 'm', warmupMs: 0, ttftMs: 60_000, tokensPerSecond: 1, maxRunning, kvCacheTokens });

  function start(e: ReturnType<typeof engine>, n: number, prompt: number) {
    const ac = new AbortController();
    const first = e.generate(n, ac.signal, prompt).next();
    first.catch(() => {});
    return { ac, first };
  }

  it('holds prompt + max_tokens per sequence and queues, first come first served, when the cache is full', async () => {
    const e = engine(10);
    const a = start(e, 5, 1); // 6 tokens
    expect(e.gauges()).toMatchObject({ running: 1, waiting: 0, kvCacheTokensUsed: 6, kvCacheTokens: 10, kvCacheUsage: 0.6 });
    const b = start(e, 5, 1); // 6: does not fit
    const c = start(e, 1, 1); // 2 would fit, but waits behind b
    expect(e.gauges()).toMatchObject({ running: 1, waiting: 2, kvCacheTokensUsed: 6 });

    b.ac.abort(); // the blocked head leaves: c gets in
    await expect(b.first).rejects.toThrow();
    expect(e.gauges()).toMatchObject({ running: 2, waiting: 0, kvCacheTokensUsed: 8 });

    a.ac.abort();
    c.ac.abort();
    await Promise.allSettled([a.first, c.first]);
    expect(e.gauges()).toMatchObject({ running: 0, waiting: 0, kvCacheTokensUsed: 0, kvCacheUsage: 0 });
  });

  it('reads as full when either the batch or the cache is', () => {
    const e = engine(1000, 2);
    const seqs = [start(e, 1, 0), start(e, 1, 0)];
    expect(e.gauges()).toMatchObject({ running: 2, kvCacheTokensUsed: 2, kvCacheUsage: 1 });
    for (const s of seqs) s.ac.abort();
  });

  it('reports GPU memory filling up while the model loads', () => {
    let now = 0;
    const e = createEngine({
      model: 'm',
      warmupMs: 1000,
      ttftMs: 1,
      tokensPerSecond: 1,
      maxRunning: 1,
      gpuMemoryBytes: 1000,
      gpuMemoryUtilization: 0.9,
      now: () => now,
    });
    expect(e.gauges()).toMatchObject({ gpuMemoryUsedBytes: 0, gpuMemoryTotalBytes: 1000 });
    now = 500;
    expect(e.gauges().gpuMemoryUsedBytes).toBe(450);
    now = 5000;
    expect(e.gauges().gpuMemoryUsedBytes).toBe(900);
  });
});
