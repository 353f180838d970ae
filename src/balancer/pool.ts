// A region's (or model pool's) instances and their live state. The pool owns
// health — readiness from active checks, ejection from passive outlier
// detection (pool/outliers.ts) — and hands the picker only the instances that
// may take traffic; what it learns for the pickers' estimates is in
// pool/estimates.ts, the capacity it reports in pool/capacity.ts.
import { DEFAULT_GPU_STALE_MS } from './pickers/gpu.js';
import { DEFAULT_SLOW_START_MS } from './pickers/weight.js';
import { capacityOf } from './pool/capacity.js';
import { createEstimates } from './pool/estimates.js';
import { createOutliers, isEjected, type OutlierOptions } from './pool/outliers.js';
import type { GpuGauges, Instance, InstanceState, PickContext, Picker, PrefixStats, Work } from './types.js';

export { effectiveWeight, slowStartFactor } from './pickers/weight.js';
export { createPicker } from './pickers/create-picker.js';

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
  /**
   * One more request in flight; `work` (what it asked for, when) feeds the expected-completion estimates.
   * Returns the prompt tokens the picker expects `s` to have cached, when it keeps track (the `prefix` strategy).
   */
  acquire(s: InstanceState, work?: Work): number | undefined;
  /** The picker reads prompts (`RequestShape.prompt`): only then does the proxy read them. */
  wantsPrompt(): boolean;
  /** The `prefix` strategy's index and decisions; undefined under another strategy. */
  prefixStats(): PrefixStats | undefined;
  release(s: InstanceState, outcome: Outcome): void;
  /** Takes an instance out of picking (scale-down) or puts it back; its requests in flight go on. Returns whether it changed. */
  setDraining(id: string, draining: boolean): boolean;
  /** Returns whether readiness changed. */
  setReady(id: string, ready: boolean, now?: number): boolean;
  updateGpu(id: string, gauges: GpuGauges): void;
  setInstances(instances: Instance[]): void;
  /** New settings from a changed configuration; live state (readiness, load, ejections, estimates) stays. */
  reconfigure(o: PoolSettings): void;
  capacity(): Capacity;
};

/** What a configuration change may set on a running pool. */
export type PoolSettings = Partial<Pick<PoolOptions, 'picker' | 'slowStartMs' | 'maxConcurrency' | 'outlier'>>;

/** A 5xx, a timeout or a failure with no response at all counts against the instance; a 4xx does not. */
export function isFailure(o: Outcome): boolean {
  if (o.timeout) return true;
  if (o.status !== undefined) return o.status >= 500;
  return !o.ok;
}

function uniqueIds(instances: readonly Instance[]): Set<string> {
  const ids = new Set<string>();
  for (const i of instances) {
    if (ids.has(i.id)) throw new Error(`duplicate balancer instance id: ${i.id}`);
    ids.add(i.id);
  }
  return ids;
}

const freshState = (instance: Instance, ready: boolean): InstanceState => ({ instance, ready, ejections: 0, consecutiveFailures: 0, outstanding: 0 });

export function createPool(opts: PoolOptions): Pool {
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  let picker = opts.picker;
  let slowStartMs = opts.slowStartMs ?? DEFAULT_SLOW_START_MS;
  let maxConcurrency = opts.maxConcurrency;
  const staleMs = opts.staleMs ?? DEFAULT_GPU_STALE_MS;
  const estimates = createEstimates();

  let list: InstanceState[] = [];
  let byId = new Map<string, InstanceState>();
  const outliers = createOutliers(opts.outlier ?? {}, () => list);

  function setInstances(instances: Instance[]) {
    const ids = uniqueIds(instances);
    const moved: string[] = [];
    // Same id at the same url keeps its live state and takes the new settings.
    list = instances.map((instance) => {
      const old = byId.get(instance.id);
      if (old && old.instance.url === instance.url) return { ...old, instance };
      moved.push(instance.id);
      return freshState(instance, opts.initiallyReady ?? false);
    });
    estimates.prune(ids, moved);
    outliers.prune(ids);
    for (const id of moved) picker.forget?.(id);
    picker.setInstances?.([...ids]);
    byId = new Map(list.map((s) => [s.instance.id, s]));
  }
  setInstances(opts.instances);

  // In-flight requests hold the state they were picked with; follow the id to the current one.
  const current = (s: InstanceState) => {
    const c = byId.get(s.instance.id);
    return c && c.instance.url === s.instance.url ? c : s;
  };

  const serves = (s: InstanceState, ctx: RequestShape) =>
    (ctx.model === undefined || s.instance.models.includes(ctx.model)) && (ctx.kind === undefined || s.instance.kinds.includes(ctx.kind));

  return {
    states: () => list,
    eligible: (ctx) => list.filter((s) => serves(s, ctx)),
    pick(ctx) {
      const t = now();
      const candidates = list.filter((s) => s.ready && !s.draining && !isEjected(s, t) && serves(s, ctx));
      return picker.pick(candidates, { model: ctx.model, kind: ctx.kind, tokens: ctx.tokens, prompt: ctx.prompt, now: t, random, slowStartMs });
    },
    acquire(s, work) {
      const c = current(s);
      c.outstanding++;
      if (!work) return undefined;
      (c.inflight ??= []).push(work);
      return picker.sent?.(c, work);
    },
    wantsPrompt: () => picker.wantsPrompt === true,
    prefixStats: () => picker.prefixStats?.(),
    release(picked, outcome) {
      const s = current(picked);
      s.outstanding = Math.max(0, s.outstanding - 1);
      const w = outcome.work;
      if (w && s.inflight) {
        const i = s.inflight.indexOf(w);
        if (i >= 0) s.inflight.splice(i, 1);
      }
      if (w) picker.ended?.(s, w, now());
      const failed = isFailure(outcome);
      // Only answers teach service time: a failure or a client that left says nothing of the instance's speed.
      if (w && !failed && !outcome.cancelled && outcome.status !== undefined && outcome.status < 400) estimates.unit(s, w, outcome.durationMs);
      estimates.latency(s, outcome.durationMs, failed);
      const t = now();
      outliers.observe(s, failed, t, t - outcome.durationMs);
    },
    setDraining(id, draining) {
      const s = byId.get(id);
      return s !== undefined && (s.draining ?? false) !== draining && ((s.draining = draining || undefined), true);
    },
    setReady(id, ready, at) {
      const s = byId.get(id);
      if (!s || s.ready === ready) return false;
      s.ready = ready;
      s.readySince = ready ? (at ?? now()) : undefined;
      // Not ready: restarting or reloading its model, its cache gone.
      if (!ready) picker.forget?.(id);
      return true;
    },
    updateGpu(id, gauges) {
      const s = byId.get(id);
      if (!s) return;
      // A counter that went back: the server restarted since the last scrape, its cache empty.
      if (gauges.prefixQueries !== undefined && s.gpu?.prefixQueries !== undefined && gauges.prefixQueries < s.gpu.prefixQueries) picker.forget?.(id);
      s.gpu = { ...gauges };
      if (gauges.kvBlocks !== undefined) picker.cacheBlocks?.(id, gauges.kvBlocks);
      s.outstandingAtScrape = s.outstanding;
      estimates.gauges(s, gauges);
    },
    setInstances,
    reconfigure(o) {
      if (o.picker) {
        picker = o.picker;
        picker.setInstances?.(list.map((s) => s.instance.id));
      }
      if (o.slowStartMs !== undefined) slowStartMs = o.slowStartMs;
      if (o.maxConcurrency !== undefined) maxConcurrency = o.maxConcurrency;
      if (o.outlier) outliers.configure(o.outlier);
    },
    capacity: () => capacityOf(list, now(), { staleMs, maxConcurrency }),
  };
}
