// A region's (or model pool's) instances and their live state. The pool owns
// health — readiness from active checks, ejection from passive outlier
// detection — and hands the picker only the instances that may take traffic.
import { DEFAULT_GPU_STALE_MS } from './pickers/gpu.js';
import { DEFAULT_SLOW_START_MS } from './pickers/weight.js';
import type { GpuGauges, Instance, InstanceState, PickContext, Picker } from './types.js';

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

export type Outcome = { ok: boolean; status?: number; durationMs: number; timeout?: boolean };

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
  acquire(s: InstanceState): void;
  release(s: InstanceState, outcome: Outcome): void;
  /** Returns whether readiness changed. */
  setReady(id: string, ready: boolean, now?: number): boolean;
  updateGpu(id: string, gauges: GpuGauges): void;
  setInstances(instances: Instance[]): void;
  capacity(): Capacity;
};

export const EWMA_ALPHA = 0.3;

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
      return old && old.instance.url === instance.url ? { ...old, instance } : fresh(instance);
    });
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
      const candidates = list.filter((s) => serves(s, ctx) && s.ready && !isEjected(s, t));
      return opts.picker.pick(candidates, { ...ctx, now: t, random, slowStartMs });
    },
    acquire(s) {
      current(s).outstanding++;
    },
    release(picked, outcome) {
      const s = current(picked);
      s.outstanding = Math.max(0, s.outstanding - 1);
      const failed = isFailure(outcome);
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
      if (s) s.gpu = { ...gauges };
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
