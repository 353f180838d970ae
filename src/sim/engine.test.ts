import { afterEach, describe, expect, it, vi } from 'vitest';
import { batchSlowdown, createEngine, type EngineOptions } from './engine.js';

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

describe('engine timing, on a clock the test moves', () => {
  afterEach(() => void vi.useRealTimers());

  /** An engine on fake time: nothing is due until the test advances the clock, however busy the machine. */
  function onFakeTime(opts: Partial<EngineOptions>) {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const sleep = (ms: number, signal: AbortSignal) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, ms);
        signal.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason as Error)), { once: true });
      });
    return createEngine({ model: 'm', warmupMs: 0, ttftMs: 20, tokensPerSecond: 200, maxRunning: 4, monotonic: () => Date.now(), sleep, ...opts });
  }
  /** Starts `fn` and says when (on the fake clock) it finished; undefined while it runs. */
  function timed(fn: () => Promise<unknown>) {
    const t0 = Date.now();
    const out: { ms?: number } = {};
    void fn().then(() => (out.ms = Date.now() - t0));
    return out;
  }
  async function drain(gen: AsyncGenerator<string>): Promise<void> {
    for await (const _ of gen);
  }

  // Four sequences at once, 24 tokens each at 200 tokens/s (5 ms a token): ttft + 23 intervals.
  it.each([
    [4, 20 + 23 * 5],
    [2, 20 + 23 * 5 * 2],
    [1, 20 + 23 * 5 * 4],
  ])('a knee of %i: each of four sequences ends at %i ms', async (batchKnee, endsAt) => {
    const e = onFakeTime({ batchKnee });
    const ac = new AbortController();
    const runs = [1, 2, 3, 4].map(() => timed(() => drain(e.generate(24, ac.signal))));
    await vi.advanceTimersByTimeAsync(endsAt - 1);
    expect(runs.map((r) => r.ms)).toEqual([undefined, undefined, undefined, undefined]);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs.map((r) => r.ms)).toEqual([endsAt, endsAt, endsAt, endsAt]);
  });

  it('costs one call plus each input per forward pass, and runs passes one at a time, in order', async () => {
    const e = onFakeTime({ embedCallMs: 20, embedPerInputMs: 1 });
    const ac = new AbortController();
    const batched = timed(() => e.embed(32, ac.signal));
    await vi.advanceTimersByTimeAsync(52);
    expect(batched.ms).toBe(52);

    // The same 32 inputs as 32 calls: each waits for the one before, and pays the call again.
    const singles = Array.from({ length: 32 }, () => timed(() => e.embed(1, ac.signal)));
    expect(e.gauges()).toMatchObject({ running: 1, waiting: 31 });
    await vi.advanceTimersByTimeAsync(32 * 21);
    expect(singles.map((r) => r.ms)).toEqual(Array.from({ length: 32 }, (_, i) => 21 * (i + 1)));
  });
});
