import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createLatencyMap, LATENCY_DEFAULTS } from './latency.js';

describe('latency map (EWMA of probe region → endpoint region)', () => {
  it.each([
    { alpha: 0.5, samples: [10, 20], want: 15 },
    { alpha: 0.5, samples: [10, 20, 20], want: 17.5 },
    { alpha: 0.2, samples: [100, 0], want: 80 },
    { alpha: 1, samples: [5, 7, 40], want: 40 },
    { alpha: 0.25, samples: [8], want: 8 }, // the first sample is the estimate
  ])('alpha $alpha over $samples → $want', ({ alpha, samples, want }) => {
    const m = createLatencyMap({ alpha });
    for (const s of samples) m.observe('sg', 'jkt', s);
    expect(m.matrix().sg.jkt).toBeCloseTo(want, 10);
  });

  it('defaults to alpha 0.2', () => {
    expect(LATENCY_DEFAULTS.alpha).toBe(0.2);
    const m = createLatencyMap();
    m.observe('sg', 'jkt', 10);
    m.observe('sg', 'jkt', 20);
    expect(m.matrix().sg.jkt).toBeCloseTo(12, 10);
  });

  it('keeps pairs apart and leaves missing pairs absent', () => {
    const m = createLatencyMap();
    m.observe('sg', 'jkt', 12);
    m.observe('sg', 'sg', 1);
    m.observe('bkk', 'jkt', 30);
    expect(m.matrix()).toEqual({ sg: { jkt: 12, sg: 1 }, bkk: { jkt: 30 } });
  });

  it('feeds only successful results with a usable RTT, by the agent region and the endpoint key region', () => {
    const m = createLatencyMap({ alpha: 0.5 });
    m.ingest({ id: 'probe-sg', region: 'sg' }, [
      { endpoint: 'jkt/jkt-a/203.0.113.21', ok: true, rttMs: 20, at: 1 },
      { endpoint: 'jkt/jkt-b/203.0.113.22', ok: true, rttMs: 30, at: 1 },
      { endpoint: 'jkt/jkt-a/203.0.113.21', ok: false, rttMs: 400, error: 'timeout', at: 2 },
      { endpoint: 'mnl/mnl-a/203.0.113.41', ok: true, at: 2 },
      { endpoint: 'bkk/bkk-a/203.0.113.31', ok: true, rttMs: Number.NaN, at: 2 },
      { endpoint: 'bkk/bkk-a/203.0.113.31', ok: true, rttMs: -1, at: 2 },
    ]);
    expect(m.matrix()).toEqual({ sg: { jkt: 25 } });
  });

  it('counts a resent batch once, and skips results older than the newest fed', () => {
    const m = createLatencyMap({ alpha: 0.5 });
    const agent = { id: 'probe-sg', region: 'sg' };
    const batch = [{ endpoint: 'jkt/jkt-a/203.0.113.21', ok: true, rttMs: 20, at: 1000 }];
    m.ingest(agent, batch);
    m.ingest(agent, [{ endpoint: 'jkt/jkt-a/203.0.113.21', ok: true, rttMs: 40, at: 1500 }]);
    m.ingest(agent, batch); // resent: older than the newest
    m.ingest(agent, [{ endpoint: 'jkt/jkt-a/203.0.113.21', ok: true, rttMs: 40, at: 1500 }]); // duplicate
    expect(m.matrix().sg.jkt).toBe(30);
    // Another agent's results are its own.
    m.ingest({ id: 'probe-sg-2', region: 'sg' }, batch);
    expect(m.matrix().sg.jkt).toBe(25);
  });

  it('matrix() is a copy', () => {
    const m = createLatencyMap();
    m.observe('sg', 'jkt', 12);
    m.matrix().sg.jkt = 999;
    expect(m.matrix().sg.jkt).toBe(12);
  });

  it.each([0, -0.1, 1.5, Number.NaN])('rejects alpha %s', (alpha) => {
    expect(() => createLatencyMap({ alpha })).toThrow(RangeError);
  });

  it('stays within the range of the samples, and converges to a constant', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.array(fc.double({ min: 0, max: 1000, noNaN: true }), { minLength: 1, maxLength: 50 }),
        (alpha, samples) => {
          const m = createLatencyMap({ alpha });
          for (const s of samples) m.observe('sg', 'jkt', s);
          const v = m.matrix().sg.jkt;
          expect(v).toBeGreaterThanOrEqual(Math.min(...samples) - 1e-9);
          expect(v).toBeLessThanOrEqual(Math.max(...samples) + 1e-9);
          for (let i = 0; i < 2000; i++) m.observe('sg', 'jkt', 42);
          expect(m.matrix().sg.jkt).toBeCloseTo(42, 3);
        },
      ),
      { seed: 5, numRuns: 200 },
    );
  });
});
