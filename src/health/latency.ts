import type { AgentInfo, ProbeResult } from './types.js';

export type LatencyMatrix = Record<string, Record<string, number>>;

export interface LatencyMap {
  /** Feeds one successful round trip (ms) into the EWMA of probe region → endpoint region. */
  observe(probeRegion: string, endpointRegion: string, rttMs: number): void;
  /**
   * Feeds an agent's batch: only successful results with a finite RTT count (a
   * failure's time is a timeout, not a latency), and only results newer than the
   * newest already fed for that agent and endpoint (a resent batch counts once).
   */
  ingest(agent: AgentInfo, results: readonly ProbeResult[]): void;
  /** A copy: probe region → endpoint region → smoothed RTT (ms). Missing pairs are absent, never 0. */
  matrix(): LatencyMatrix;
  /** Drops what is kept per agent (an agent control no longer tracks). */
  forget(agentId: string): void;
}

export const LATENCY_DEFAULTS = { alpha: 0.2 } as const;
const REPLAY_WINDOW_MS = 60_000;
/** Probe regions kept: the region is the agent's word, so past this new ones are ignored. */
const MAX_PROBE_REGIONS = 64;

/**
 * `alpha` is the weight of the newest sample. With probes every 500 ms from
 * each agent and several endpoints per region, 0.2 follows a real shift within
 * a couple of seconds while one slow check moves the estimate by a fifth.
 */
export function createLatencyMap(opts: { alpha?: number } = {}): LatencyMap {
  const alpha = opts.alpha ?? LATENCY_DEFAULTS.alpha;
  if (!(alpha > 0 && alpha <= 1)) throw new RangeError(`alpha must be in (0, 1], got ${alpha}`);
  const rows = new Map<string, Map<string, number>>();
  // Bounded by agents × endpoints: control refuses agents past its tracker's limit.
  const newest = new Map<string, number>();

  function observe(probeRegion: string, endpointRegion: string, rttMs: number): void {
    if (!Number.isFinite(rttMs) || rttMs < 0) return;
    let row = rows.get(probeRegion);
    if (!row) {
      if (rows.size >= MAX_PROBE_REGIONS) return;
      rows.set(probeRegion, (row = new Map<string, number>()));
    }
    const prev = row.get(endpointRegion);
    row.set(endpointRegion, prev === undefined ? rttMs : prev + alpha * (rttMs - prev));
  }

  return {
    observe,
    ingest(agent, results) {
      for (const r of [...results].sort((a, b) => a.at - b.at)) {
        const slash = r.endpoint.indexOf('/');
        const seen = `${agent.id} ${r.endpoint}`;
        const prev = newest.get(seen);
        // Skips a resent result; one far older means the agent's clock went back, and counts.
        if (prev !== undefined && !(r.at > prev) && r.at > prev - REPLAY_WINDOW_MS) continue;
        newest.set(seen, r.at);
        if (r.ok && r.rttMs !== undefined && slash > 0) observe(agent.region, r.endpoint.slice(0, slash), r.rttMs);
      }
    },
    forget(agentId) {
      for (const key of newest.keys()) if (key.startsWith(`${agentId} `)) newest.delete(key);
    },
    matrix() {
      const out: LatencyMatrix = {};
      for (const [probe, row] of rows) out[probe] = Object.fromEntries(row);
      return out;
    },
  };
}
