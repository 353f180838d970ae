// From the samples and scrapes to the figures: latency per time bucket (by
// request start), the Arus fleet over time, instance-seconds, the scale-up
// lag and the latencies outside it.
import type { RunResult, Sample } from './load.js';
import type { FleetSample } from './scrape.js';
import type { SetupKey, SetupSpec } from './setups.js';
import { DURATION_S, SPIKE_START_MS } from './settings.js';

export type Stats = { n: number; p50: number; p99: number };
export type SetupResult = { spec: SetupSpec; run: RunResult; fleet: FleetSample[] };

const pct = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)] : NaN);
/** p50 and p99 (nearest rank) of the answered requests among `samples`. */
export function stats(samples: Sample[]): Stats {
  const s = samples.filter((x) => x.ok).map((x) => x.ms).sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 0.5), p99: pct(s, 0.99) };
}

export type Bucket = {
  from: number;
  to: number;
  per: Record<string, { requests: number; failed: number; p50: number; p99: number; queueMax: number }>;
  /** The Arus pool over the bucket: mean and max of current, max desired, warming, draining, ready (undefined without the gauges). */
  fleet?: { currentMean: number; currentMax: number; desiredMax: number; warmingMax: number; drainingMax: number; readyMax: number };
};

const inWindow = (from: number, to: number) => (x: { start: number }) => x.start >= from && x.start < to;
const maxOf = (xs: number[]) => (xs.length ? Math.max(...xs) : NaN);

/**
 * ∫ current dt over [from, to) (ms → instance-seconds), each scrape's value
 * held until the next; before the first scrape its value, after the last
 * the last value. Undefined when the gauge was never seen.
 */
export function integrate(fleet: FleetSample[], from: number, to: number): number | undefined {
  const pts = fleet.filter((f) => f.current !== undefined);
  if (pts.length === 0) return undefined;
  let sum = 0;
  for (let i = 0; i < pts.length; i++) {
    const a = Math.max(from, i === 0 ? -Infinity : pts[i].t);
    const b = Math.min(to, i + 1 < pts.length ? pts[i + 1].t : Infinity);
    if (b > a) sum += (pts[i].current! * (b - a)) / 1000;
  }
  return sum;
}

export function buckets(results: SetupResult[], width: number): Bucket[] {
  const arus = results.find((r) => r.spec.key === 'arus');
  const out: Bucket[] = [];
  for (let from = 0; from < DURATION_S * 1000; from += width) {
    const to = from + width;
    const per: Bucket['per'] = {};
    for (const r of results) {
      const mine = r.run.samples.filter(inWindow(from, to));
      const s = stats(mine);
      per[r.spec.key] = { requests: mine.length, failed: mine.filter((x) => !x.ok).length, p50: s.p50, p99: s.p99, queueMax: maxOf(r.fleet.filter((f) => f.t >= from && f.t < to).map((f) => f.queue)) };
    }
    const b: Bucket = { from, to, per };
    const f = arus?.fleet.filter((x) => x.t >= from && x.t < to && x.current !== undefined) ?? [];
    if (arus && f.length)
      b.fleet = {
        currentMean: (integrate(arus.fleet, from, to) ?? NaN) / (width / 1000),
        currentMax: maxOf(f.map((x) => x.current!)),
        desiredMax: maxOf(f.map((x) => x.desired ?? NaN)),
        warmingMax: maxOf(f.map((x) => x.warming ?? NaN)),
        drainingMax: maxOf(f.map((x) => x.draining ?? NaN)),
        readyMax: maxOf(f.map((x) => x.ready)),
      };
    out.push(b);
  }
  return out;
}

/**
 * The scale-up lag: from the spike's start to the first scrape at which the
 * Arus pool has grown past its size at the spike's start, no instance it
 * started is still warming, and the balancer's queue is empty: the new
 * instances serve and the backlog of the lag has been served. Undefined when
 * that never happened (no scaler, or it never caught up).
 */
export function lagEnd(fleet: FleetSample[]): number | undefined {
  const before = fleet.filter((f) => f.t < SPIKE_START_MS && f.current !== undefined).at(-1)?.current ?? 1;
  let grew = false;
  for (const f of fleet) {
    if (f.t < SPIKE_START_MS || f.current === undefined) continue;
    if (f.current > before) grew = true;
    if (grew && f.warming === 0 && f.queue === 0) return f.t;
  }
  return undefined;
}

export type Summary = {
  key: SetupKey;
  label: string;
  requests: number;
  failed: number;
  unfinished: number;
  statuses: Record<string, number>;
  whole: Stats;
  outsideLag: Stats;
  /** Requests started in the spike after the lag (the spike served by the grown fleet). */
  spikeAfterLag: Stats;
  instanceSeconds: number;
  /** How instanceSeconds was found: the configured count × the run, or the scraped gauge. */
  instanceSecondsFrom: 'static' | 'gauge' | 'configured (no gauge)';
};

/** Outside the lag: before the spike, and from the lag's end on (only before the spike when the lag never ended). */
export const outsideLag = (lag: number | undefined) => (x: { start: number }) => x.start < SPIKE_START_MS || (lag !== undefined && x.start >= lag);

export function summarize(r: SetupResult, lag: number | undefined, spikeEnd: number): Summary {
  const failedSamples = r.run.samples.filter((x) => !x.ok);
  const statuses: Record<string, number> = {};
  for (const s of failedSamples) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
  if (r.run.unfinished) statuses.unfinished = r.run.unfinished;
  const gauge = r.spec.autoscale ? integrate(r.fleet, 0, DURATION_S * 1000) : undefined;
  return {
    key: r.spec.key,
    label: r.spec.label,
    requests: r.run.samples.length + r.run.unfinished,
    failed: failedSamples.length + r.run.unfinished,
    unfinished: r.run.unfinished,
    statuses,
    whole: stats(r.run.samples),
    outsideLag: stats(r.run.samples.filter(outsideLag(lag))),
    spikeAfterLag: stats(lag === undefined ? [] : r.run.samples.filter(inWindow(lag, spikeEnd))),
    instanceSeconds: gauge ?? r.spec.instances * DURATION_S,
    instanceSecondsFrom: !r.spec.autoscale ? 'static' : gauge === undefined ? 'configured (no gauge)' : 'gauge',
  };
}
