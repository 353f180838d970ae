// Passive outlier detection: consecutive failures eject an instance, for a
// back-off that doubles with each ejection (capped). An instance back from
// ejection is half-open: its first failure re-ejects it, its first success
// resets the back-off.
import type { InstanceState } from '../types.js';

export type OutlierOptions = { consecutiveFailures?: number; baseEjectionMs?: number; maxEjectionMs?: number };

export interface Outliers {
  /** One answered (or failed) request's verdict on its instance, at `t`. */
  observe(s: InstanceState, failed: boolean, t: number): void;
}

export const isEjected = (s: InstanceState, t: number) => s.ejectedUntil !== undefined && s.ejectedUntil > t;

export function createOutliers(opts: OutlierOptions = {}): Outliers {
  const threshold = Math.max(1, opts.consecutiveFailures ?? 5);
  const baseEjectionMs = opts.baseEjectionMs ?? 1_000;
  const maxEjectionMs = opts.maxEjectionMs ?? 30_000;

  function eject(s: InstanceState, t: number) {
    const ms = Math.min(maxEjectionMs, baseEjectionMs * 2 ** s.ejections);
    s.ejectedUntil = t + ms;
    s.ejections++;
    s.consecutiveFailures = 0;
  }

  return {
    observe(s, failed, t) {
      if (!failed) {
        s.consecutiveFailures = 0;
        if (!isEjected(s, t)) {
          s.ejections = 0;
          s.ejectedUntil = undefined;
        }
        return;
      }
      if (isEjected(s, t)) return; // a request sent before the ejection; the clock is already running
      s.consecutiveFailures++;
      // Half-open: an instance back from ejection is re-ejected by its first failure.
      if (s.ejections > 0 || s.consecutiveFailures >= threshold) eject(s, t);
    },
  };
}
