import type { PoolFigures, ScaleEvent } from '../balancer/scale/report.js';
import type { RegionCapacity } from '../snapshot/snapshot.js';

/** What a region's balancer reports every second or so. */
export type CapacityReport = {
  region: string;
  balancer: string;
  instances: number;
  ready: number;
  /** Requests in flight across ready instances. */
  outstanding: number;
  /** Concurrency left before requests queue (ready instances × cap − outstanding). */
  freeConcurrency: number;
  queueDepth: number;
  /** Mean KV-cache headroom (1 − usage) of ready instances with fresh metrics, when known. */
  kvHeadroom?: number;
  /** The instances that cannot take requests now, and why (not ready: the check's reason; ejected: the failures). */
  unavailable?: { id: string; reason: string }[];
  /** Each model pool's scaling figures (desired, current, warming, draining). */
  pools?: PoolFigures[];
  /** Scaling steps since the balancer's last delivered report: control puts them in the history. */
  events?: ScaleEvent[];
  at: number;
};


export type CapacityChange = { region: string; kind: 'capacity.shedding' | 'capacity.recovered' | 'capacity.unknown'; from: number; to: number; reason: string };

export type CapacityOptions = {
  /** Start shedding at or above this saturation… */
  high?: number;
  /** …and stop at or below this one (hysteresis). */
  low?: number;
  /** Never shed more than this share of a region's new clients. */
  maxShed?: number;
  /** A report older than this is forgotten: the region's capacity is unknown, not empty (ms). */
  staleMs?: number;
};

export const CAPACITY_DEFAULTS = { high: 0.85, low: 0.7, maxShed: 0.5, staleMs: 5000 } as const;

/**
 * Saturation of a region from its balancers' reports: the larger of the share
 * of its concurrency in use (queued requests count as over 100 %) and its
 * KV-cache use. No ready instance at all is full saturation.
 */
export function saturationOf(reports: readonly CapacityReport[]): number {
  const ready = reports.reduce((n, r) => n + r.ready, 0);
  if (ready === 0) return 1;
  const used = reports.reduce((n, r) => n + r.outstanding + r.queueDepth, 0);
  const total = reports.reduce((n, r) => n + r.outstanding + r.freeConcurrency, 0);
  const concurrency = total > 0 ? Math.min(1, used / total) : 1;
  const kv = reports.filter((r) => r.kvHeadroom !== undefined);
  const kvUse = kv.length ? 1 - kv.reduce((n, r) => n + r.kvHeadroom!, 0) / kv.length : 0;
  return Math.max(concurrency, kvUse);
}

/** What a region's scaling says of its shedding: instances warming (spill-over meanwhile), or instances that joined since. */
function scalingNote(reports: readonly CapacityReport[], ready: number, readyAtStart: number | undefined, shed: number): string {
  const warming = reports.reduce((n, r) => n + (r.pools ?? []).reduce((m, p) => m + p.warming, 0), 0);
  if (shed > 0 && warming > 0) return `; scaling up, ${warming} instance${warming === 1 ? '' : 's'} warming: the excess goes to the next region with headroom until they join`;
  const joined = readyAtStart === undefined ? 0 : ready - readyAtStart;
  if (shed === 0 && joined > 0) return `; ${joined} new instance${joined === 1 ? '' : 's'} joined and take the traffic back`;
  return '';
}

/**
 * Turns balancer reports into a shed share per region, with hysteresis
 * (shedding starts at `high`, stops at `low`) and in steps of 10 % so small
 * wobbles do not rebuild every DNS node's snapshot. Pure: time comes in.
 */
export function createCapacityTracker(opts: CapacityOptions = {}) {
  const { high, low, maxShed, staleMs } = { ...CAPACITY_DEFAULTS, ...opts };
  const reports = new Map<string, Map<string, CapacityReport>>();
  const state = new Map<string, RegionCapacity>();
  /** Instances ready when a region began shedding: those that joined since took the traffic back. */
  const readyAtShed = new Map<string, number>();

  const shedFor = (saturation: number, shedding: boolean): number => {
    if (!shedding) return 0;
    const raw = (saturation - low) / (1 - low);
    return Math.min(maxShed, Math.max(0.1, Math.round(raw * 10) / 10));
  };

  function evaluate(now: number): CapacityChange[] {
    const changes: CapacityChange[] = [];
    for (const [region, byBalancer] of reports) {
      for (const [id, r] of byBalancer) if (now - r.at > staleMs) byBalancer.delete(id);
      const before = state.get(region);
      if (byBalancer.size === 0) {
        reports.delete(region);
        state.delete(region);
        if (before) changes.push({ region, kind: 'capacity.unknown', from: before.shed, to: 0, reason: `region ${region}: no capacity report for ${staleMs / 1000} s: capacity unknown, not shedding` });
        continue;
      }
      const list = [...byBalancer.values()];
      const saturation = saturationOf(list);
      const wasShedding = (before?.shed ?? 0) > 0;
      const shedding = wasShedding ? saturation > low : saturation >= high;
      const shed = shedFor(saturation, shedding);
      const ready = list.reduce((n, r) => n + r.ready, 0);
      const instances = list.reduce((n, r) => n + r.instances, 0);
      const queued = list.reduce((n, r) => n + r.queueDepth, 0);
      const reason = `saturation ${saturation.toFixed(2)} (${ready}/${instances} instances ready, ${queued} queued)`;
      state.set(region, { shed, saturation, reason });
      const from = before?.shed ?? 0;
      if (from === 0 && shed > 0) readyAtShed.set(region, ready);
      if (from !== shed)
        changes.push({
          region,
          kind: shed > from ? 'capacity.shedding' : 'capacity.recovered',
          from,
          to: shed,
          reason: `region ${region}: ${shed > 0 ? `shedding ${Math.round(shed * 100)}% of new clients` : 'no longer shedding'}: ${reason}${scalingNote(list, ready, readyAtShed.get(region), shed)}`,
        });
      if (shed === 0) readyAtShed.delete(region);
    }
    return changes;
  }

  return {
    report(r: CapacityReport, now: number): CapacityChange[] {
      let byBalancer = reports.get(r.region);
      if (!byBalancer) reports.set(r.region, (byBalancer = new Map<string, CapacityReport>()));
      byBalancer.set(r.balancer, r);
      return evaluate(now);
    },
    tick: evaluate,
    current(): Readonly<Record<string, RegionCapacity>> {
      return Object.fromEntries(state);
    },
    reports(): CapacityReport[] {
      return [...reports.values()].flatMap((m) => [...m.values()]);
    },
  };
}

export type CapacityTracker = ReturnType<typeof createCapacityTracker>;
