/**
 * Epoch-like milliseconds: the wall clock at creation, advanced by the
 * monotonic clock. Durations measured with it are right when the wall clock is
 * stepped (NTP, an operator, a VM resumed); its readings are dates as of start.
 */
export function anchoredClock(wall: () => number = Date.now, monotonic: () => number = () => performance.now()): () => number {
  const offset = wall() - monotonic();
  return () => offset + monotonic();
}
