// Passive outlier detection on real requests, after Envoy's (the architecture
// overview's "Outlier detection" and config.cluster.v3.OutlierDetection):
//
// - Consecutive failures (Envoy's consecutive_5xx, "defaults to 5") eject an instance, but only with more
//   evidence than a 10 % error rate gives: at least half of its last 20 outcomes failed too (the way Envoy's
//   failure_percentage detector asks a failure share of a minimum request volume). Five in a row alone is a
//   run that 10 % random errors make once in ~110 000 requests (0.9 × 0.1⁵): at 20 requests a second, 8
//   instances would see 0.8 ejections per 10 minutes. With the share as well, 1.5e-7 a request (simulated:
//   a run of 5 ending a window whose other 15 hold 5 more failures, P(Bin(15, 0.1) ≥ 5) ≈ 1.3 %), 0.014 per
//   10 minutes for the same 8. An instance that dies after serving well is out after 10 failures (half the
//   window), a new or half-failing one after 5.
// - "It checks to make sure the number of ejected hosts is below the allowed threshold (max_ejection_percent
//   …) … the host is not ejected", and max_ejection_percent "defaults to 10% but will eject at least one host
//   regardless of the value". Here at most max(1, ⌊n × maxEjectionPercent / 100⌋) of n instances are out at
//   once, never more (Envoy checks the share before the ejection, so 3 hosts at 50 % may lose 2). Default
//   50 %: a pool of 2 may eject 1, of 4 two, of 8 four. Envoy's 10 % ejects one host in any pool under 20,
//   so two bad GPUs of eight would keep one of them in rotation; 50 % routes around up to half the GPUs
//   (Google Cloud's outlier detection defaults to 50 % too) while at least half the pool always serves: a
//   failure of most of the pool is not an outlier, and the readiness checks decide it (readiness.ts).
// - Nor does an ejection take out the last instance serving (ready and not ejected) while the others are
//   out already: the one left is not performing "unlike the others" (Envoy routes to every host in that
//   case, its panic threshold). So ejection alone never leaves the pool with nothing to serve, the report
//   that takes a region out (control/balancer-evidence.ts). A pool of one instance ejects it, as Envoy
//   would: that is what sends its model's requests to a fallback.
// - "The base time … multiplied by the number of times the host has been ejected in a row", capped by
//   max_ejection_time, and "when the host becomes healthy, the ejection time multiplier decreases with time"
//   (one step per interval, 10 s by default). Here the back-off doubles (1 s, 2 s, 4 s … capped at 30 s) and
//   loses one step per `decayMs` (10 s) in service since the last ejection ended, so a sick instance that
//   passes one request now and then is not readmitted every second.
// - Half-open: an instance back from an ejection is re-ejected by its second failure before any success
//   (its first success ends the probation). Re-ejected by its first failure, an instance with 10 % random
//   errors would go straight back out with probability 0.1 every time it returns; two cost 0.01, and an
//   instance still dead is out again after 2 failed requests. Outcomes of requests sent before the last
//   ejection began (or while it lasts) say nothing new and are not counted.
import type { InstanceState } from '../types.js';

export type OutlierOptions = {
  /** Failures in a row that may eject an instance (Envoy's consecutive_5xx). 5 unless set. */
  consecutiveFailures?: number;
  /** Of these, the share of the last `failureWindow` outcomes that must have failed too. 0.5 and 20 unless set. */
  failureShare?: number;
  failureWindow?: number;
  /** At most this share of the pool ejected at once, but at least one instance (Envoy's max_ejection_percent). 50 unless set. */
  maxEjectionPercent?: number;
  /** Ejection lasts base × 2^(ejections in a row), capped. 1 000 / 30 000 unless set. */
  baseEjectionMs?: number;
  maxEjectionMs?: number;
  /** Time in service that takes one step off the back-off. 10 000 unless set. */
  decayMs?: number;
};

export const OUTLIER_DEFAULTS = {
  consecutiveFailures: 5,
  failureShare: 0.5,
  failureWindow: 20,
  maxEjectionPercent: 50,
  baseEjectionMs: 1_000,
  maxEjectionMs: 30_000,
  decayMs: 10_000,
} as const satisfies Required<OutlierOptions>;

/** Failures before any success that re-eject an instance back from an ejection. */
const HALF_OPEN_FAILURES = 2;

export interface Outliers {
  /** One answered (or failed) request's verdict on its instance, at `t`; `sentAt` when the request left. */
  observe(s: InstanceState, failed: boolean, t: number, sentAt?: number): void;
  /** Settings from a changed configuration (unset ones back to their defaults); live state stays. */
  configure(o: OutlierOptions): void;
  /** Drops what is kept of instances no longer in the pool. */
  prune(ids: ReadonlySet<string>): void;
}

export const isEjected = (s: InstanceState, t: number) => s.ejectedUntil !== undefined && s.ejectedUntil > t;

/** How many of `n` instances may be ejected at once. */
export const maxEjected = (n: number, percent: number) => Math.max(1, Math.floor((n * percent) / 100));

/** What the detector keeps of an instance beside its state: its last outcomes and its last ejection. */
type Trail = { url: string; recent: boolean[]; ejectedAt?: number; returnedAt?: number; halfOpen: boolean };

/** `states` reads the pool's instances now: the share ejected is the pool's. */
export function createOutliers(opts: OutlierOptions, states: () => readonly InstanceState[]): Outliers {
  let o: Required<OutlierOptions> = { ...OUTLIER_DEFAULTS };
  const configure = (next: OutlierOptions) => {
    const defined = Object.fromEntries(Object.entries(next).filter(([, v]) => v !== undefined));
    o = { ...OUTLIER_DEFAULTS, ...defined };
    o.consecutiveFailures = Math.max(1, o.consecutiveFailures);
  };
  configure(opts);
  const trails = new Map<string, Trail>();

  function trail(s: InstanceState): Trail {
    let r = trails.get(s.instance.id);
    if (!r || r.url !== s.instance.url) trails.set(s.instance.id, (r = { url: s.instance.url, recent: [], halfOpen: false }));
    return r;
  }

  /** Whether the pool may lose `s` now: the share, and someone left to serve. */
  function mayEject(s: InstanceState, t: number): boolean {
    const list = states();
    if (list.filter((x) => isEjected(x, t)).length >= maxEjected(list.length, o.maxEjectionPercent)) return false;
    const others = list.filter((x) => x.instance.id !== s.instance.id);
    return others.length === 0 || others.some((x) => x.ready && !isEjected(x, t));
  }

  function eject(s: InstanceState, r: Trail, t: number) {
    // The multiplier decays with the time in service since the last ejection ended.
    if (r.returnedAt !== undefined) s.ejections = Math.max(0, s.ejections - Math.floor(Math.max(0, t - r.returnedAt) / o.decayMs));
    const ms = Math.min(o.maxEjectionMs, o.baseEjectionMs * 2 ** s.ejections);
    s.ejectedUntil = t + ms;
    s.ejections++;
    s.consecutiveFailures = 0;
    Object.assign(r, { ejectedAt: t, returnedAt: t + ms, halfOpen: true, recent: [] });
  }

  return {
    observe(s, failed, t, sentAt) {
      if (isEjected(s, t)) return; // a request sent before the ejection; the clock is already running
      if (s.ejectedUntil !== undefined) s.ejectedUntil = undefined; // over: back in service, half-open
      const r = trail(s);
      if (sentAt !== undefined && r.ejectedAt !== undefined && sentAt < r.ejectedAt) return;
      r.recent.push(failed);
      if (r.recent.length > o.failureWindow) r.recent.splice(0, r.recent.length - o.failureWindow);
      if (!failed) {
        s.consecutiveFailures = 0;
        r.halfOpen = false;
        return;
      }
      s.consecutiveFailures++;
      const share = r.recent.filter(Boolean).length / r.recent.length;
      const outlier = r.halfOpen ? s.consecutiveFailures >= HALF_OPEN_FAILURES : s.consecutiveFailures >= o.consecutiveFailures && share >= o.failureShare;
      // Not allowed now: the counters stay, and its next failure asks again.
      if (outlier && mayEject(s, t)) eject(s, r, t);
    },
    configure,
    prune(ids) {
      for (const id of trails.keys()) if (!ids.has(id)) trails.delete(id);
    },
  };
}
