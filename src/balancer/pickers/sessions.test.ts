import { describe, expect, it } from 'vitest';
import { createSessions } from './sessions.js';

describe('sessions', () => {
  it('tells a first sight from a later one, and keeps the ones still seen while a million others pass', () => {
    const s = createSessions(1000);
    expect(s.seen('live')).toBe(false);
    expect(s.seen('live')).toBe(true);
    let max = 0;
    for (let i = 0; i < 1_000_000; i++) {
      s.seen(`one-off-${i}`);
      if (i % 500 === 0) expect(s.seen('live')).toBe(true);
      max = Math.max(max, s.size());
    }
    expect(max).toBeLessThanOrEqual(1000);
    // One not seen for 1000 others is forgotten: its next sight is a first one.
    expect(s.seen('one-off-0')).toBe(false);
  });
});
