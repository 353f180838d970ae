// A region's (or model pool's) instances and their live state. The pool owns
// health — readiness from active checks, ejection from passive outlier
// detection — and hands the picker only the instances that may take traffic.
import { DEFAULT_GPU_STALE_MS } from './pickers/gpu.js';
import { DEFAULT_SLOW_START_MS } from './pickers/weight.js';
import { workClass, type GpuGauges, type Instance, type InstanceState, type PickContext, type Picker, type Work, type WorkClass } from './types.js';

export { effectiveWeight, slowStartFactor } from './pickers/weight.js';
export { createPicker } from './pickers/create-picker.js';

export type OutlierOptions = { consecutiveFailures?: number; baseEjectionMs?: number; maxEjectionMs?: number };

export type PoolOptions = {
  instances: Instance[];
  picker: Picker;
  /** Window over which a newly ready instance's weight ramps from 10 % to 100 %. Default 30 s. */
  slowStartMs?: number;
  outlier?: OutlierOptions;
  /** Per-instance concurrency cap; when given, `capacity()` reports free concurrency. */
  maxConcurrency?: number;
  /** Gauges older than this are left out of `capacity().kvHeadroom`. Default 5 s. */
  staleMs?: number;
  /** Whether an instance is ready before its first readiness check. Default false. */
  initiallyReady?: boolean;
  now?: () => number;
  random?: () => number;
};

export type Outcome = {
  ok: boolean;
  status?: number;
  durationMs: number;
  timeout?: boolean;
  /** The client left before the answer ended: the duration says nothing of the instance's speed. */
  cancelled?: boolean;
  /** The work given to `acquire`, if any: it leaves the instance's in-flight list and its size normalises the latency sample. */
  work?: Work;
};

export type Capacity = {
  instances: number;
  /** Ready and not ejected. */
  ready: number;
  ejected: number;
  outstanding: number;
  freeConcurrency?: number;
  /** Mean (1 − kvCacheUsage) of ready instances with fresh gauges; undefined when none has any. */
  kvHeadroom?: number;
};

export type RequestShape = Omit<PickContext, 'now' | 'random'>;

export type Pool = {
  states(): readonly InstanceState[];
  /** Instances that serve this model and kind, whatever their health (to tell "unknown model" from "all down"). */
  eligible(ctx: RequestShape): InstanceState[];
  pick(ctx: RequestShape): InstanceState | undefined;
  /** One more request in flight; `work` (what it asked for, when) feeds the expected-completion estimates. */
  acquire(s: InstanceState, work?: Work): void;
  release(s: InstanceState, outcome: Outcome): void;
  /** Returns whether readiness changed. */
  setReady(id: string, ready: boolean, now?: number): boolean;
  updateGpu(id: string, gauges: GpuGauges): void;
  setInstances(instances: Instance[]): void;
  capacity(): Capacity;
};

export const EWMA_ALPHA = 0.3;
/** Per-unit samples kept per work class, and the quantile of them taken as the unqueued service time. */
const UNIT_SAMPLES = 32;
const UNIT_QUANTILE = 0.25;
/** Gauge readings of a full instance kept to estimate its batch size. */
const SLOT_READINGS = 5;

/** Units of work of a request: tokens asked for (generations), or one call (embeddings); undefined when unknown. */
export function workUnits(w: Work | undefined): number | undefined {
  if (!w) return undefined;
  if (workClass(w.kind) === 'embeddings') return 1;
  return w.tokens !== undefined && w.tokens > 0 ? w.tokens : undefined;
}

/** A 5xx, a timeout or a failure with no response at all counts against the instance; a 4xx does not. */
export function isFailure(o: Outcome): boolean {
  if (o.timeout) return true;
  if (o.status !== undefined) return o.status >= 500;
  return !o.ok;
}

export function createPool(opts: PoolOptions): Pool {
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const slowStartMs = opts.slowStartMs ?? DEFAULT_SLOW_START_MS;
  const threshold = Math.max(1, opts.outlier?.consecutiveFailures ?? 5);
  const baseEjectionMs = opts.outlier?.baseEjectionMs ?? 1_000;
  const maxEjectionMs = opts.outlier?.maxEjectionMs ?? 30_000;
  const staleMs = opts.staleMs ?? DEFAULT_GPU_STALE_MS;

  let list: InstanceState[] = [];
  let byId = new Map<string, InstanceState>();
  // Recent per-unit samples and full-instance readings, by instance id (not part of the state pickers see).
  const unitSamples = new Map<string, Record<WorkClass, number[]> & { since: number }>();
  const slotReadings = new Map<string, number[]>();

  function learnUnit(s: InstanceState, w: Work, durationMs: number): void {
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
  }

  const fresh = (instance: Instance): InstanceState => ({
    instance,
    ready: opts.initiallyReady ?? false,
    ejections: 0,
    consecutiveFailures: 0,
    outstanding: 0,
  });

  function setInstances(instances: Instance[]) {
    const ids = new Set<string>();
    for (const i of instances) {
      if (ids.has(i.id)) throw new Error(`duplicate balancer instance id: ${i.id}`);
      ids.add(i.id);
    }
    // Same id at the same url keeps its live state and takes the new settings.
    list = instances.map((instance) => {
      const old = byId.get(instance.id);
      if (old && old.instance.url === instance.url) return { ...old, instance };
      unitSamples.delete(instance.id);
      slotReadings.delete(instance.id);
      return fresh(instance);
    });
    for (const id of unitSamples.keys()) if (!ids.has(id)) unitSamples.delete(id);
    for (const id of slotReadings.keys()) if (!ids.has(id)) slotReadings.delete(id);
    byId = new Map(list.map((s) => [s.instance.id, s]));
  }
  setInstances(opts.instances);

  // In-flight requests hold the state they were picked with; follow the id to the current one.
  const current = (s: InstanceState) => {
    const c = byId.get(s.instance.id);
    return c && c.instance.url === s.instance.url ? c : s;
  };
  const isEjected = (s: InstanceState, t: number) => s.ejectedUntil !== undefined && s.ejectedUntil > t;

  const serves = (s: InstanceState, ctx: RequestShape) =>
    (ctx.model === undefined || s.instance.models.includes(ctx.model)) && (ctx.kind === undefined || s.instance.kinds.includes(ctx.kind));

  function eject(s: InstanceState, t: number) {
    const ms = Math.min(maxEjectionMs, baseEjectionMs * 2 ** s.ejections);
    s.ejectedUntil = t + ms;
    s.ejections++;
    s.consecutiveFailures = 0;
  }

  return {
    states: () => list,
    eligible: (ctx) => list.filter((s) => serves(s, ctx)),
    pick(ctx) {
      const t = now();
      const candidates = list.filter((s) => s.ready && !isEjected(s, t) && serves(s, ctx));
      return opts.picker.pick(candidates, { model: ctx.model, kind: ctx.kind, tokens: ctx.tokens, now: t, random, slowStartMs });
    },
    acquire(s, work) {
      const c = current(s);
      c.outstanding++;
      if (work) (c.inflight ??= []).push(work);
    },
    release(picked, outcome) {
      const s = current(picked);
      s.outstanding = Math.max(0, s.outstanding - 1);
      const w = outcome.work;
      if (w && s.inflight) {
        const i = s.inflight.indexOf(w);
        if (i >= 0) s.inflight.splice(i, 1);
      }
      const failed = isFailure(outcome);
      // Only answers teach service time: a failure or a client that left says nothing of the instance's speed.
      if (w && !failed && !outcome.cancelled && outcome.status !== undefined && outcome.status < 400) learnUnit(s, w, outcome.durationMs);
      // A fast failure must not make an instance look fast.
      const sample = failed ? Math.max(outcome.durationMs, s.ewmaMs ?? 0) : outcome.durationMs;
      if (Number.isFinite(sample) && sample >= 0) s.ewmaMs = s.ewmaMs === undefined ? sample : EWMA_ALPHA * sample + (1 - EWMA_ALPHA) * s.ewmaMs;
      const t = now();
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
    setReady(id, ready, at) {
      const s = byId.get(id);
      if (!s || s.ready === ready) return false;
      s.ready = ready;
      s.readySince = ready ? (at ?? now()) : undefined;
      return true;
    },
    updateGpu(id, gauges) {
      const s = byId.get(id);
      if (!s) return;
      s.gpu = { ...gauges };
      s.outstandingAtScrape = s.outstanding;
      // A full instance (no KV room, or requests waiting) is running as many sequences as it can.
      if (gauges.running > 0 && (gauges.waiting > 0 || gauges.kvCacheUsage >= 0.98)) {
        let r = slotReadings.get(id);
        if (!r) slotReadings.set(id, (r = []));
        r.push(gauges.running);
        if (r.length > SLOT_READINGS) r.shift();
        // The smallest recent reading: a reading can include a pass of another kind (an embeddings call).
        s.slots = Math.min(...r);
      }
    },
    setInstances,
    capacity() {
      const t = now();
      const healthy = list.filter((s) => s.ready && !isEjected(s, t));
      const headrooms = healthy.flatMap((s) => {
        const g = s.gpu;
        if (!g || t - g.scrapedAt > staleMs) return [];
        return [g.memoryExhausted ? 0 : Math.min(1, Math.max(0, 1 - g.kvCacheUsage))];
      });
      return {
        instances: list.length,
        ready: healthy.length,
        ejected: list.filter((s) => isEjected(s, t)).length,
        outstanding: list.reduce((n, s) => n + s.outstanding, 0),
        freeConcurrency: opts.maxConcurrency === undefined ? undefined : healthy.reduce((n, s) => n + Math.max(0, opts.maxConcurrency! - s.outstanding), 0),
        kvHeadroom: headrooms.length ? headrooms.reduce((a, b) => a + b, 0) / headrooms.length : undefined,
      };
    },
  };
}
