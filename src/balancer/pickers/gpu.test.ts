import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { arbitraryCase, ctxOf, gauges, host, hostsOf, NOW, pickerContract, run, seeded, shares } from './contract.case.js';
import { gpu } from './gpu.js';

describe('gpu', () => {
  pickerContract('gpu', () => gpu());

  it('never picks an instance reporting GPU memory exhaustion (property)', () => {
    fc.assert(
      fc.property(arbitraryCase, (c) => {
        for (const s of run(gpu(), hostsOf(c), c)) if (s) expect(s.gpu?.memoryExhausted ?? false).toBe(false);
      }),
      { numRuns: 300 },
    );
    expect(gpu().pick([host('oom', { gpu: gauges({ memoryExhausted: true }) })], ctxOf(seeded(1)))).toBeUndefined();
  });

  it('prefers the most KV-cache headroom', () => {
    const got = shares(gpu(), [host('full', { gpu: gauges({ kvCacheUsage: 0.7 }) }), host('roomy', { gpu: gauges({ kvCacheUsage: 0.2 }) })], 100);
    expect(got).toEqual({ full: 0, roomy: 100 });
  });

  it('prefers the shorter queue', () => {
    const got = shares(gpu(), [host('queued', { gpu: gauges({ running: 8, waiting: 4, kvCacheUsage: 0.3 }) }), host('free', { gpu: gauges({ running: 8, kvCacheUsage: 0.4 }) })], 100);
    expect(got).toEqual({ queued: 0, free: 100 });
  });

  it('counts a waiting request as worse than a running one: a queue means the batch is full', () => {
    const got = shares(gpu(), [host('queued', { gpu: gauges({ running: 4, waiting: 4, kvCacheUsage: 0.2 }) }), host('batching', { gpu: gauges({ running: 10, kvCacheUsage: 0.3 }) })], 50);
    expect(got).toEqual({ queued: 0, batching: 50 });
  });

  it('treats stale gauges and missing gauges as saturated', () => {
    const busy = host('busy', { gpu: gauges({ running: 30, waiting: 2, kvCacheUsage: 0.9 }) });
    const cases = [host('stale', { gpu: gauges({ scrapedAt: NOW - 5_001 }) }), host('unscraped')];
    for (const bad of cases) expect(shares(gpu(), [bad, busy], 50)).toEqual({ [bad.instance.id]: 0, busy: 50 });
  });

  it('counts a full KV cache as a queue: a new sequence waits for one to end', () => {
    const full = host('full', { gpu: gauges({ running: 4, kvCacheUsage: 0.99 }), outstanding: 4, outstandingAtScrape: 4 });
    const room = host('room', { gpu: gauges({ running: 4, kvCacheUsage: 0.5 }), outstanding: 4, outstandingAtScrape: 4 });
    expect(shares(gpu(), [full, room], 20)).toEqual({ full: 0, room: 20 });
  });

  const gen = (tokens: number, at = NOW) => ({ kind: 'chat' as const, tokens, at });

  it('sends a long generation to a fast busy instance that frees a slot soon rather than to an idle slow one', () => {
    // fast: 4 ms/token, its 4 slots busy with requests ending in ≤ 200 ms; slow: 25 ms/token, idle.
    const fast = host('fast', { slots: 4, unitMs: { generation: 4 }, outstanding: 4, outstandingAtScrape: 4, inflight: [gen(50), gen(60), gen(80), gen(100)], gpu: gauges({ running: 4, kvCacheUsage: 1 }) });
    const slow = host('slow', { slots: 4, unitMs: { generation: 25 }, gpu: gauges() });
    // 400 tokens: fast ≈ 200 + 1600 ms, slow = 10 000 ms.
    expect(shares(gpu(), [fast, slow], 10, 1, { kind: 'chat', tokens: 400 })).toEqual({ fast: 10, slow: 0 });
  });

  it('sends a short generation to an idle slow instance rather than behind a long queue on a fast one', () => {
    const fast = host('fast', { slots: 1, unitMs: { generation: 4 }, outstanding: 2, inflight: [gen(1000), gen(1000)], gpu: gauges({ running: 1, waiting: 1 }), outstandingAtScrape: 2 });
    const slow = host('slow', { slots: 4, unitMs: { generation: 25 }, gpu: gauges() });
    // 20 tokens: slow 500 ms; fast waits ≈ 8 s for its queue.
    expect(shares(gpu(), [fast, slow], 10, 1, { kind: 'chat', tokens: 20 })).toEqual({ fast: 0, slow: 10 });
  });

  it('an instance with free slots runs the request at its own speed; an unmeasured one counts as the slowest measured', () => {
    const fast = host('fast', { unitMs: { generation: 4 }, gpu: gauges() });
    const slow = host('slow', { unitMs: { generation: 25 }, gpu: gauges() });
    const fresh = host('fresh', { gpu: gauges() });
    const got = shares(gpu(), [fast, slow, fresh], 30, 1, { kind: 'chat', tokens: 100 });
    expect(got).toEqual({ fast: 30, slow: 0, fresh: 0 });
  });

  it('estimates embeddings by calls in flight, apart from generations', () => {
    const a = host('a', { unitMs: { embeddings: 20, generation: 4 }, outstanding: 2, inflight: [gen(100), gen(100)], gpu: gauges() });
    const b = host('b', { unitMs: { embeddings: 20, generation: 25 }, outstanding: 1, inflight: [{ kind: 'embeddings', at: NOW }], gpu: gauges() });
    expect(shares(gpu(), [a, b], 10, 1, { kind: 'embeddings' })).toEqual({ a: 10, b: 0 });
  });

  it('reads staleness from its option', () => {
    const old = host('old', { gpu: gauges({ scrapedAt: NOW - 10_000 }) });
    const busy = host('busy', { gpu: gauges({ kvCacheUsage: 0.9 }) });
    expect(shares(gpu({ staleMs: 60_000 }), [old, busy], 20)).toEqual({ old: 20, busy: 0 });
    expect(shares(gpu(), [old, busy], 20)).toEqual({ old: 0, busy: 20 });
  });

  it('falls back to least outstanding among equals and when every instance is saturated', () => {
    const same = gauges({ running: 10, kvCacheUsage: 0.5 });
    expect(shares(gpu(), [host('a', { gpu: same, outstanding: 3 }), host('b', { gpu: same, outstanding: 1 })], 30)).toEqual({ a: 0, b: 30 });
    const stale = gauges({ scrapedAt: 0 });
    expect(shares(gpu(), [host('a', { gpu: stale, outstanding: 3 }), host('b', { gpu: stale, outstanding: 1 }), host('c', { outstanding: 2 })], 30)).toEqual({ a: 0, b: 30, c: 0 });
  });

  it('counts its own requests since the scrape, so one good scrape draws no herd', () => {
    const p = gpu();
    const hosts = [host('a', { gpu: gauges() }), host('b', { gpu: gauges() }), host('c', { gpu: gauges() })];
    const random = seeded(9);
    for (let k = 0; k < 30; k++) p.pick(hosts, ctxOf(random))!.outstanding++;
    expect(hosts.map((h) => h.outstanding)).toEqual([10, 10, 10]);
  });
});
