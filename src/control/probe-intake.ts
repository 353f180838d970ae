// Taking a probe agent's report: refused (429) past the agent limit or the
// agent's rate, else its results for configured endpoints feed the latency map
// and the tracker, publish what changed, and are kept as raw results.
import type { HealthTracker } from '../health/tracker.js';
import type { LatencyMap } from '../health/latency.js';
import type { AgentInfo, HealthEvent, ProbeResult } from '../health/types.js';
import type { ProbeResults } from './probe-results.js';
import type { Publisher } from './publish.js';
import type { StorageLog } from './storage-log.js';

/** A probe report control will not take now: answered 429 with Retry-After. */
export class ReportRefused extends Error {
  constructor(
    message: string,
    readonly retryAfterS: number,
    readonly why: 'rate' | 'agents',
  ) {
    super(message);
    this.name = 'ReportRefused';
  }
}

export interface ProbeIntake {
  /** Throws ReportRefused when the agent is over its rate or one agent too many. */
  report(agent: AgentInfo, results: readonly ProbeResult[]): { accepted: number; targets: number };
  /** Reports refused so far, by why. */
  refused(): { rate: number; agents: number };
}

export function createProbeIntake(deps: {
  tracker: HealthTracker;
  latency: LatencyMap;
  /** The monotonic clock (ms). */
  mono: () => number;
  reportsPerSecond: number;
  reportBurst: number;
  /** Where the tracker's events go. */
  trackerEvents: (events: readonly HealthEvent[]) => void;
  publisher: Pick<Publisher, 'publishIfTrackerMoved'>;
  results: Pick<ProbeResults, 'record'>;
  storageLog: Pick<StorageLog, 'limited'>;
  targetsVersion: () => number;
}): ProbeIntake {
  const { tracker, latency, mono, storageLog } = deps;
  const buckets = createTokenBuckets({ ratePerS: deps.reportsPerSecond, burst: deps.reportBurst, now: mono });
  const refused = { rate: 0, agents: 0 };

  return {
    report(agent, results) {
      const t = mono();
      if (!tracker.admits(agent.id)) {
        refused.agents++;
        storageLog.limited(agent.id, 'agents');
        throw new ReportRefused(`too many probe agents: ${tracker.agents().length} tracked and all live; agent ${agent.id} is not taken`, 60, 'agents');
      }
      const wait = buckets.take(agent.id);
      if (wait > 0) {
        refused.rate++;
        storageLog.limited(agent.id, 'rate');
        throw new ReportRefused(`agent ${agent.id} reports too often: at most ${deps.reportsPerSecond} a second`, Math.ceil(wait / 1000), 'rate');
      }
      // Only results for configured endpoints are kept (memory and disk); the rest are counted as accepted and ignored.
      const accepted = results.filter((r) => typeof r.endpoint === 'string' && tracker.tracks(r.endpoint));
      latency.ingest(agent, accepted);
      deps.trackerEvents(tracker.ingest(agent, accepted, t));
      deps.publisher.publishIfTrackerMoved(`probe reports from ${agent.id}`);
      deps.results.record(agent, accepted, results.length - accepted.length);
      return { accepted: results.length, targets: deps.targetsVersion() };
    },
    refused: () => ({ ...refused }),
  };
}

/** Per-agent token buckets on a monotonic clock; `take` is the wait (ms) before the agent may report again, 0 when it may now. */
function createTokenBuckets(opts: { ratePerS: number; burst: number; now: () => number }) {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    take(id: string): number {
      const t = opts.now();
      const b = buckets.get(id) ?? { tokens: opts.burst, at: t };
      b.tokens = Math.min(opts.burst, b.tokens + (Math.max(0, t - b.at) / 1000) * opts.ratePerS);
      b.at = t;
      buckets.delete(id);
      buckets.set(id, b);
      // Only admitted agents get here, so this is bounded by the tracker's limit; full buckets are forgotten first.
      if (buckets.size > 4096) for (const [k, v] of buckets) if (buckets.size > 2048 && v.tokens >= opts.burst - 1) buckets.delete(k);
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return 0;
      }
      return ((1 - b.tokens) / opts.ratePerS) * 1000;
    },
  };
}
