// The idle timeout's curve as connections fill (the acceptor itself is tested on real sockets in test/dns-tcp.test.ts).
import { describe, expect, it } from 'vitest';
import { idleTimeoutFor } from './tcp-listener.js';

describe('idleTimeoutFor: full up to half the cap, then linear down to the floor at the cap', () => {
  it.each([
    // open, cap, idle, floor → timeout
    [0, 1000, 10_000, 1000, 10_000],
    [1, 1000, 10_000, 1000, 10_000],
    [500, 1000, 10_000, 1000, 10_000],
    [501, 1000, 10_000, 1000, 9982],
    [750, 1000, 10_000, 1000, 5500],
    [900, 1000, 10_000, 1000, 2800],
    [999, 1000, 10_000, 1000, 1018],
    [1000, 1000, 10_000, 1000, 1000],
    // Over the cap (never, but bounded): the floor.
    [1001, 1000, 10_000, 1000, 1000],
    // A cap of one: that one is at the cap.
    [1, 1, 10_000, 1000, 1000],
    // A floor above the idle timeout: the idle timeout throughout.
    [1000, 1000, 800, 1000, 800],
    [15, 20, 10_000, 1000, 5500],
  ])('%i open of %i, idle %i, floor %i → %i ms', (open, cap, idle, floor, want) => {
    expect(idleTimeoutFor(open, cap, idle, floor)).toBe(want);
  });
});
