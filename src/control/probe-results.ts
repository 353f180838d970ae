// The raw probe results `/v1/probes` shows: kept best effort (never at the cost
// of taking a report), one per endpoint per report, at receipt time, and pruned
// to a window of time and a number of rows.
import { storageFault } from '../db/faults.js';
import type { AgentInfo, ProbeResult } from '../health/types.js';
import type { ResultsWindow, WriteGuard } from './storage.js';

export interface ProbeResults {
  /** Keeps an agent's accepted results; `ignored` more were not for a configured endpoint. */
  record(agent: AgentInfo, results: readonly ProbeResult[], ignored: number): void;
  /** Prunes at most every 10 s of `t` (the monotonic clock). */
  prune(t: number): void;
  stats(): { resultsNotStored: number; resultsPruned: number };
}

export function createProbeResults(deps: { results: ResultsWindow; guard: WriteGuard; now: () => number; windowMs: number; maxRows: number }): ProbeResults {
  const { results: store, guard, now, windowMs, maxRows } = deps;
  const counts = { resultsNotStored: 0, resultsPruned: 0 };
  let lastPrune = 0;

  return {
    /** At receipt time when the agent's clock is off. */
    record(agent, results, ignored) {
      counts.resultsNotStored += ignored;
      if (results.length === 0) return;
      if (!guard.retryDue()) return void (counts.resultsNotStored += results.length);
      // The newest result per endpoint: what /v1/probes shows, and rows bounded by endpoints, not by the report's size.
      const newest = new Map<string, ProbeResult>();
      for (const r of results) {
        const kept = newest.get(r.endpoint);
        if (kept === undefined || !(kept.at >= r.at)) newest.set(r.endpoint, r);
      }
      counts.resultsNotStored += results.length - newest.size;
      const received = now();
      try {
        store.recordResults(agent, [...newest.values()], (r) => Math.min(received, Math.max(received - windowMs, r.at)));
      } catch (err) {
        if (!storageFault(err)) throw err;
        counts.resultsNotStored += newest.size;
      }
    },

    prune(t) {
      if (!(t - lastPrune > 10_000 && guard.retryDue())) return;
      lastPrune = t;
      try {
        counts.resultsPruned += store.pruneResults(now() - windowMs, maxRows).overflow;
      } catch (err) {
        if (!storageFault(err)) throw err;
      }
    },

    stats: () => ({ ...counts }),
  };
}
