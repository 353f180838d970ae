// A model pool's scaling signal: how many instances keep its expected
// queueing under the target, from the balancer's own load model. Demand is
// requests in flight plus queued for the model, sampled every interval and
// averaged over two windows, after Knative's autoscaler (KPA): the stable
// window decides, the short (panic) window takes over in a burst, and while
// it does the count never goes down. Pure: time comes in.
import type { AutoscaleDoc } from '../../config/scaling-schema.js';

export type SignalSettings = Pick<AutoscaleDoc, 'min' | 'max' | 'targetUtilization' | 'targetQueueMs' | 'windowMs' | 'panicWindowMs'> & {
  /** Requests one instance takes at once (the balancer's `maxConcurrentPerInstance`). */
  slots: number;
};

/** One look at the pool. */
export type DemandSample = {
  t: number;
  /** Requests in flight to the pool's instances. */
  outstanding: number;
  /** Requests waiting in the balancer's queue for the model. */
  queued: number;
  /** Instances that take requests now (ready, not ejected, not draining). */
  live: number;
  /** The pool's mean response time (ms), when known. */
  serviceMs?: number;
};

export type Signal = {
  /** The count that keeps expected queueing under the target, within min and max. */
  desired: number;
  /** The short window rules: a burst (demand at twice the live instances, or queueing past the target). */
  panic: boolean;
  /** Mean demand (in flight + queued) over the stable window and over the short one. */
  demand: number;
  burst: number;
  /** Queued × service time ÷ live slots: what a request arriving now waits (ms); Infinity with none live and some queued. */
  expectedQueueMs: number;
  /** The figures behind `desired`, for an event's reason. */
  reason: string;
};

const DEFAULT_SERVICE_MS = 1000;

export function createSignal(initial: SignalSettings) {
  let o = initial;
  const samples: DemandSample[] = [];
  /** Until when the short window rules (a burst seen within the last stable window), and the highest count it asked for. */
  let panicUntil = -Infinity;
  let panicFloor = 0;

  const mean = (since: number) => {
    let n = 0;
    let sum = 0;
    for (let i = samples.length - 1; i >= 0 && samples[i].t > since; i--) {
      sum += samples[i].outstanding + samples[i].queued;
      n++;
    }
    return n ? sum / n : 0;
  };
  const need = (demand: number) => Math.ceil(demand / (o.slots * o.targetUtilization) - 1e-9);
  const clamp = (n: number) => Math.min(o.max, Math.max(o.min, n));

  return {
    configure(next: SignalSettings) {
      o = next;
    },
    add(s: DemandSample) {
      samples.push(s);
      const oldest = s.t - o.windowMs;
      let drop = 0;
      while (drop < samples.length && samples[drop].t <= oldest) drop++;
      if (drop) samples.splice(0, drop);
    },
    /** The signal as of the last sample. */
    read(): Signal {
      const last = samples.at(-1);
      if (!last) return { desired: clamp(0), panic: false, demand: 0, burst: 0, expectedQueueMs: 0, reason: 'no demand seen yet' };
      const t = last.t;
      const demand = mean(t - o.windowMs);
      const burst = mean(t - o.panicWindowMs);
      const service = last.serviceMs ?? DEFAULT_SERVICE_MS;
      const expectedQueueMs = last.queued === 0 ? 0 : last.live === 0 ? Infinity : (last.queued * service) / (last.live * o.slots);
      const stable = need(demand);
      const fast = need(burst);
      // Knative's panic threshold, on the unrounded count: rounding up would call any minute over the target a burst.
      const burstNow = burst / (o.slots * o.targetUtilization) >= 2 * Math.max(1, last.live) || expectedQueueMs > o.targetQueueMs;
      if (burstNow) {
        if (t >= panicUntil) panicFloor = 0;
        panicUntil = t + o.windowMs;
      }
      const panic = t < panicUntil;
      let raw = stable;
      if (panic) raw = panicFloor = Math.max(stable, fast, panicFloor);
      const desired = clamp(raw);
      const per = `${o.slots} slots each at ${Math.round(o.targetUtilization * 100)} %`;
      const queueing = expectedQueueMs === 0 ? '' : `, expected queueing ${Number.isFinite(expectedQueueMs) ? `${(expectedQueueMs / 1000).toFixed(1)} s` : 'unbounded (none live)'} (target ${(o.targetQueueMs / 1000).toFixed(1)} s)`;
      const window = panic ? `burst: ${burst.toFixed(1)} requests over the last ${o.panicWindowMs / 1000} s` : `${demand.toFixed(1)} requests over ${o.windowMs / 1000} s`;
      const bound = desired !== raw ? ` (${raw} wanted, held within ${o.min}..${o.max})` : '';
      return { desired, panic, demand, burst, expectedQueueMs, reason: `demand ${window} (in flight + queued), ${per}${queueing}: ${desired} instances${bound}` };
    },
  };
}

export type ScaleSignal = ReturnType<typeof createSignal>;
