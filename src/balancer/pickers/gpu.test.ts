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

  it('treats a full KV cache, stale gauges and missing gauges as saturated', () => {
    const busy = host('busy', { gpu: gauges({ running: 30, waiting: 2, kvCacheUsage: 0.9 }) });
    const cases = [
      host('fullKv', { gpu: gauges({ kvCacheUsage: 0.99 }) }),
      host('stale', { gpu: gauges({ scrapedAt: NOW - 5_001 }) }),
      host('unscraped'),
    ];
    for (const bad of cases) expect(shares(gpu(), [bad, busy], 50)).toEqual({ [bad.instance.id]: 0, busy: 50 });
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
