// What the pool learns about each instance for the pickers' estimates:
// response time (EWMA) and service time per unit of work (a low quantile of
// recent samples) from answered requests, and the sequences it runs at once
// from gauges read while it was full.
import { workClass, type GpuGauges, type InstanceState, type Work, type WorkClass } from '../types.js';

export const EWMA_ALPHA = 0.3;
/** Per-unit samples kept per work class, and the quantile of them taken as the unqueued service time. */
const UNIT_SAMPLES = 32;
const UNIT_QUANTILE = 0.25;
/** Gauge readings of a full instance kept to estimate its batch size. */
const SLOT_READINGS = 5;

export interface Estimates {
  /** A request's duration, into the instance's response-time EWMA; a failure never lowers it. */
  latency(s: InstanceState, durationMs: number, failed: boolean): void;
  /** An answered request's duration per unit of its work, into the per-class EWMA and service time. */
  unit(s: InstanceState, w: Work, durationMs: number): void;
  /** Fresh gauges: a full instance's running count bounds its batch size (`slots`). */
  gauges(s: InstanceState, g: GpuGauges): void;
  /** Drops what was learned of instances not in `keep`, and of those in `reset` (a new url). */
  prune(keep: ReadonlySet<string>, reset: readonly string[]): void;
}

/** Units of work of a request: tokens asked for (generations), or one call (embeddings); undefined when unknown. */
export function workUnits(w: Work | undefined): number | undefined {
  if (!w) return undefined;
  if (workClass(w.kind) === 'embeddings') return 1;
  return w.tokens !== undefined && w.tokens > 0 ? w.tokens : undefined;
}

export function createEstimates(): Estimates {
  // Recent per-unit samples and full-instance readings, by instance id (not part of the state pickers see).
  const unitSamples = new Map<string, Record<WorkClass, number[]> & { since: number }>();
  const slotReadings = new Map<string, number[]>();

  return {
    latency(s, durationMs, failed) {
      // A fast failure must not make an instance look fast.
      const sample = failed ? Math.max(durationMs, s.ewmaMs ?? 0) : durationMs;
      if (Number.isFinite(sample) && sample >= 0) s.ewmaMs = s.ewmaMs === undefined ? sample : EWMA_ALPHA * sample + (1 - EWMA_ALPHA) * s.ewmaMs;
    },
    unit(s, w, durationMs) {
      const units = workUnits(w);
      if (units === undefined || !(durationMs >= 0) || !Number.isFinite(durationMs)) return;
      const cls = workClass(w.kind);
      const perUnit = durationMs / units;
      const ewma = (s.unitEwma ??= {});
      ewma[cls] = ewma[cls] === undefined ? perUnit : EWMA_ALPHA * perUnit + (1 - EWMA_ALPHA) * ewma[cls];
      let rings = unitSamples.get(s.instance.id);
      if (!rings) unitSamples.set(s.instance.id, (rings = { generation: [], embeddings: [], since: 0 }));
      const ring = rings[cls];
      ring.push(perUnit);
      if (ring.length > UNIT_SAMPLES) ring.shift();
      // The quantile is re-read while the ring fills, then every fourth sample: a sort per request is not free.
      if (ring.length < UNIT_SAMPLES || ++rings.since >= 4 || s.unitMs?.[cls] === undefined) {
        rings.since = 0;
        const sorted = [...ring].sort((a, b) => a - b);
        (s.unitMs ??= {})[cls] = sorted[Math.floor((sorted.length - 1) * UNIT_QUANTILE)];
      }
    },
    gauges(s, g) {
      // A full instance (no KV room, or requests waiting) is running as many sequences as it can.
      if (!(g.running > 0 && (g.waiting > 0 || g.kvCacheUsage >= 0.98))) return;
      const id = s.instance.id;
      let r = slotReadings.get(id);
      if (!r) slotReadings.set(id, (r = []));
      r.push(g.running);
      if (r.length > SLOT_READINGS) r.shift();
      // The smallest recent reading: a reading can include a pass of another kind (an embeddings call).
      s.slots = Math.min(...r);
    },
    prune(keep, reset) {
      for (const id of reset) {
        unitSamples.delete(id);
        slotReadings.delete(id);
      }
      for (const id of unitSamples.keys()) if (!keep.has(id)) unitSamples.delete(id);
      for (const id of slotReadings.keys()) if (!keep.has(id)) slotReadings.delete(id);
    },
  };
}
