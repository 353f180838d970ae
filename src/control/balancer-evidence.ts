// The balancers' word on their own regions: the second kind of evidence,
// beside the probe quorum. A region whose every fresh balancer report says
// that no instance is ready (every one down or ejected) has its endpoints
// down at once: the balancer sees every real request fail the moment the GPUs
// do, where probes need two samples. Its claim counts only while fresh
// (`staleMs`): a balancer gone silent loses its voice and the probes decide
// alone. Rise stays slow: a region comes back only once its balancers have
// reported ready instances for `riseMs` without a break, and then only if the
// probes say up too (the tracker's health is applied first, this on top).
// A balancer speaks only for its own region: the API refuses a report for
// another one (api/routes/capacity.ts, the credential's binding).
import type { CapacityReport } from './capacity.js';

export type BalancerEvidenceOptions = {
  /** A report older than this says nothing (ms). Default 3 s: three report periods, and reports come on every change too. */
  staleMs?: number;
  /** Ready instances reported without a break for this long before the balancer's claim is lifted (ms). Default 2 s. */
  riseMs?: number;
};

export const EVIDENCE_DEFAULTS = { staleMs: 3000, riseMs: 2000 } as const;

/** Why a region's balancers say it cannot serve: which balancer, which instances, why. */
export type BalancerClaim = { reason: string; balancers: string[]; since: number };

type RegionState = { reports: Map<string, CapacityReport>; down?: BalancerClaim; readySince?: number };

/** The claim's text: "balancer jkt-lb-1: 0 of 2 instances ready (jkt-1: ejected after 5 consecutive failures; jkt-2: not ready: …)". */
function claimOf(reports: readonly CapacityReport[]): string {
  return reports
    .map((r) => {
      const detail = r.unavailable?.length ? ` (${r.unavailable.map((u) => `${u.id}: ${u.reason}`).join('; ')})` : '';
      return `balancer ${r.balancer}: 0 of ${r.instances} instances ready${detail}`;
    })
    .join('; ');
}

export function createBalancerEvidence(opts: BalancerEvidenceOptions = {}) {
  const { staleMs, riseMs } = { ...EVIDENCE_DEFAULTS, ...opts };
  const regions = new Map<string, RegionState>();

  /** Re-judges one region at `now`; what changed (the claim that started, or why it ended), else undefined. */
  function judge(region: string, s: RegionState, now: number): string | undefined {
    for (const [id, r] of s.reports) if (now - r.at > staleMs) s.reports.delete(id);
    const fresh = [...s.reports.values()];
    const none = fresh.length > 0 && fresh.every((r) => r.ready === 0);
    if (none) {
      s.readySince = undefined;
      const reason = claimOf(fresh);
      const started = s.down === undefined;
      s.down = { reason, balancers: fresh.map((r) => r.balancer), since: s.down?.since ?? now };
      return started ? reason : undefined;
    }
    if (!s.down) return undefined;
    // Silent: the claim goes with the voice. Ready again: only after the rise window.
    if (fresh.length > 0) {
      s.readySince ??= now;
      if (now - s.readySince < riseMs) return undefined;
    }
    const was = s.down.balancers.join(', ');
    s.down = undefined;
    s.readySince = undefined;
    if (fresh.length === 0) {
      regions.delete(region);
      return `balancer ${was} of ${region} silent for ${staleMs / 1000} s: its word no longer counts, the probes decide`;
    }
    return `balancer ${was}: instances of ${region} ready for ${riseMs / 1000} s`;
  }

  return {
    /** A report, stamped with control's clock; what changed (a claim that started or ended), else undefined. */
    report(r: CapacityReport): string | undefined {
      let s = regions.get(r.region);
      if (!s) regions.set(r.region, (s = { reports: new Map() }));
      s.reports.set(r.balancer, r);
      return judge(r.region, s, r.at);
    },
    /** Time passing: stale reports and rise windows; what changed, else undefined. */
    tick(now: number): string | undefined {
      const changed: string[] = [];
      for (const [region, s] of regions) {
        const c = judge(region, s, now);
        if (c) changed.push(c);
      }
      return changed.length ? changed.join('; ') : undefined;
    },
    /** Regions whose balancers say nothing there can serve, now. */
    down(): ReadonlyMap<string, BalancerClaim> {
      const out = new Map<string, BalancerClaim>();
      for (const [region, s] of regions) if (s.down) out.set(region, s.down);
      return out;
    },
  };
}

export type BalancerEvidence = ReturnType<typeof createBalancerEvidence>;
