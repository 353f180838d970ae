import { describe, expect, it } from 'vitest';
import { createSignal, type DemandSample } from './signals.js';

// 8 slots at 70 %: 5.6 requests (in flight + queued) per instance.
const settings = { min: 1, max: 6, targetUtilization: 0.7, targetQueueMs: 1000, windowMs: 10_000, panicWindowMs: 1000, slots: 8 };

function feed(signal: ReturnType<typeof createSignal>, from: number, to: number, sample: Omit<DemandSample, 't'>, every = 100) {
  for (let t = from; t < to; t += every) signal.add({ t, ...sample });
  return signal.read();
}

describe('scaling signal', () => {
  it('wants the instances that hold demand at the target utilisation, within min and max', () => {
    const s = createSignal(settings);
    expect(feed(s, 0, 10_000, { outstanding: 11, queued: 0, live: 2 }).desired).toBe(2); // 11 / 5.6 = 1.96
    expect(feed(s, 10_000, 20_000, { outstanding: 12, queued: 0, live: 2 }).desired).toBe(3); // 2.14
    expect(feed(s, 20_000, 30_000, { outstanding: 0, queued: 0, live: 3 }).desired).toBe(1); // min
    expect(feed(s, 30_000, 40_000, { outstanding: 16, queued: 200, live: 2 }).desired).toBe(6); // max
  });

  it('a trough just over the target is not a burst; twice the live instances is, and takes the short window', () => {
    const s = createSignal(settings);
    // 6 requests on one instance: over 5.6, under 11.2. The stable window rules.
    const calm = feed(s, 0, 10_000, { outstanding: 6, queued: 0, live: 1 });
    expect(calm.panic).toBe(false);
    // A burst of 16 over the last second: 16 / 5.6 = 2.9 instances' worth on 1 live.
    const burst = feed(s, 10_000, 11_000, { outstanding: 8, queued: 8, live: 1, serviceMs: 100 });
    expect(burst.panic).toBe(true);
    expect(burst.desired).toBe(3);
    expect(burst.reason).toMatch(/burst/);
  });

  it('queueing past the target is a burst, and while it rules the count never goes down', () => {
    const s = createSignal(settings);
    feed(s, 0, 10_000, { outstanding: 8, queued: 0, live: 2, serviceMs: 500 });
    // 12 queued × 500 ms ÷ 16 slots = 375 ms: under the 1 s target.
    expect(feed(s, 10_000, 10_100, { outstanding: 8, queued: 12, live: 2, serviceMs: 500 }).panic).toBe(false);
    // 40 queued: 1.25 s.
    const q = feed(s, 10_100, 11_000, { outstanding: 16, queued: 40, live: 2, serviceMs: 500 });
    expect(q.expectedQueueMs).toBeCloseTo(1250);
    expect(q.panic).toBe(true);
    const top = q.desired;
    expect(top).toBeGreaterThanOrEqual(4);
    // Demand falls at once: within the stable window of the burst the count holds.
    expect(feed(s, 11_000, 15_000, { outstanding: 2, queued: 0, live: 4 }).desired).toBe(top);
    // A stable window after the last burst, it follows demand again.
    expect(feed(s, 15_000, 32_000, { outstanding: 2, queued: 0, live: 4 })).toMatchObject({ panic: false, desired: 1 });
  });
});
