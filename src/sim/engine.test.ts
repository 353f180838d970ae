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
    const first = e.generate(n, ac.signal, { tokens: prompt }).next();
    first.catch(() => {});
    return { ac, first };
  }

  it('holds the blocks of prompt + max_tokens per sequence and queues, first come first served, when the cache is full', async () => {
    const e = engine(160); // 10 blocks of 16 tokens
    const a = start(e, 80, 16); // 96 tokens: 6 blocks
    expect(e.gauges()).toMatchObject({ running: 1, waiting: 0, kvCacheTokensUsed: 96, kvCacheTokens: 160, kvCacheUsage: 0.6 });
    const b = start(e, 80, 16); // 6 more: does not fit
    const c = start(e, 20, 1); // 21 tokens, 2 blocks, would fit, but waits behind b
    expect(e.gauges()).toMatchObject({ running: 1, waiting: 2, kvCacheTokensUsed: 96 });

    b.ac.abort(); // the blocked head leaves: c gets in
    await expect(b.first).rejects.toThrow();
    expect(e.gauges()).toMatchObject({ running: 2, waiting: 0, kvCacheTokensUsed: 128 });

    a.ac.abort();
    c.ac.abort();
    await Promise.allSettled([a.first, c.first]);
    expect(e.gauges()).toMatchObject({ running: 0, waiting: 0, kvCacheTokensUsed: 0, kvCacheUsage: 0 });
  });

  it('rounds the cache down to whole blocks, and refuses at once a sequence larger than all of it', async () => {
    const e = engine(100); // 6 blocks: 96 tokens
    expect(e.kvCacheTokens).toBe(96);
    await expect(e.generate(90, new AbortController().signal, { tokens: 7 }).next()).rejects.toThrow(RangeError);
    expect(e.gauges()).toMatchObject({ running: 0, waiting: 0 });
  });

  it('reads as full when either the batch or the cache is', () => {
    const e = engine(1024, 2);
    const seqs = [start(e, 1, 0), start(e, 1, 0)];
    expect(e.gauges()).toMatchObject({ running: 2, kvCacheTokensUsed: 32, kvCacheUsage: 1 });
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

  // Prefill at 1000 tokens/s: 1 ms a token. A 640-token prompt is 40 full blocks.
  const LONG = { tokens: 640, hashes: Array.from({ length: 40 }, (_, i) => 1000 + i) };

  it('adds the prefill of the uncached prompt to the time to first token: exactly, cached or not', async () => {
    const e = onFakeTime({ ttftMs: 20, prefillTokensPerSecond: 1000 });
    const ac = new AbortController();
    const seen: number[] = [];
    const cold = timed(() => e.generate(1, ac.signal, LONG, (a) => seen.push(a.cachedTokens)).next());
    await vi.advanceTimersByTimeAsync(20 + 640);
    expect(cold.ms).toBe(20 + 640);

    // Again: 39 blocks cached, the last (the prompt is all whole blocks) recomputed, as vLLM computes at least one token.
    const warm = timed(() => e.generate(1, ac.signal, LONG, (a) => seen.push(a.cachedTokens)).next());
    await vi.advanceTimersByTimeAsync(20 + 16);
    expect(warm.ms).toBe(20 + 16);
    expect(seen).toEqual([0, 624]);
    expect(e.gauges()).toMatchObject({ prefixCacheQueries: 1280, prefixCacheHits: 624 });
  });

  it('prefills one prompt at a time, in order of admission', async () => {
    const e = onFakeTime({ ttftMs: 20, prefillTokensPerSecond: 1000 });
    const ac = new AbortController();
    const other = { tokens: 640, hashes: LONG.hashes.map((h) => h + 5000) };
    const firsts = [LONG, other].map((p) => timed(() => e.generate(1, ac.signal, p).next()));
    await vi.advanceTimersByTimeAsync(640 + 640 + 20);
    expect(firsts.map((f) => f.ms)).toEqual([640 + 20, 640 + 640 + 20]);
  });

  it('decodes at half speed while a prefill runs beside the batch (chunked prefill shares each step)', async () => {
    const e = onFakeTime({ ttftMs: 20, tokensPerSecond: 200, prefillTokensPerSecond: 1000 });
    const ac = new AbortController();
    // Alone: 5 tokens at 20 + 4 × 5 ms. Beside a 100 ms prefill: each interval after the first token takes 10 ms.
    const alone = timed(() => drain(e.generate(5, ac.signal)));
    await vi.advanceTimersByTimeAsync(40);
    expect(alone.ms).toBe(40);
    const beside = timed(() => drain(e.generate(5, ac.signal)));
    const prefilling = timed(() => e.generate(1, ac.signal, { tokens: 100 }).next());
    await vi.advanceTimersByTimeAsync(60);
    expect(beside.ms).toBe(20 + 4 * 10);
    await vi.advanceTimersByTimeAsync(60);
    expect(prefilling.ms).toBe(100 + 20);
  });

  it('on boot (a restart) forgets every cached block and starts its counters again from 0', async () => {
    const e = onFakeTime({ ttftMs: 20, prefillTokensPerSecond: 1000 });
    const ac = new AbortController();
    const cached: number[] = [];
    const once = async () => {
      const t = timed(() => drain(e.generate(1, ac.signal, LONG, (a) => cached.push(a.cachedTokens))));
      await vi.advanceTimersByTimeAsync(700);
      expect(t.ms).toBeDefined();
    };
    await once();
    await once();
    expect(e.gauges()).toMatchObject({ prefixCacheQueries: 1280, prefixCacheHits: 624 });
    e.boot();
    expect(e.gauges()).toMatchObject({ prefixCacheQueries: 0, prefixCacheHits: 0, kvCacheTokensUsed: 0 });
    await once();
    expect(cached).toEqual([0, 624, 0]);
  });

  it('with the prefix cache off, computes every prompt in full and reports no hit', async () => {
    const e = onFakeTime({ ttftMs: 20, prefillTokensPerSecond: 1000, prefixCache: false });
    const ac = new AbortController();
    for (let i = 0; i < 2; i++) {
      const t = timed(() => e.generate(1, ac.signal, LONG).next());
      await vi.advanceTimersByTimeAsync(660);
      expect(t.ms).toBe(660);
    }
    expect(e.gauges()).toMatchObject({ prefixCacheQueries: 1280, prefixCacheHits: 0 });
  });
});
