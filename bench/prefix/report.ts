// The summary: one table per workload (medians over the runs), then the
// issue's targets, each MET or MISSED with its figures, and the Arus
// contenders' lost requests.
import { median } from '../common.js';
import { LEASTCONN, ORACLE, PREFIX, SGLANG, type Contender } from './contenders.js';
import type { RunResult } from './run.js';
import { RUNS, SECONDS, type WorkloadName } from './settings.js';

export type Results = Partial<Record<WorkloadName, Record<string, RunResult[]>>>;

const pad = (s: string, n: number) => s.padStart(n);
const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const pctText = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}` : 'n/a');
const maxShare = (r: RunResult) => {
  const n = Object.values(r.spread);
  const total = n.reduce((a, b) => a + b, 0);
  return total ? Math.max(...n) / total : NaN;
};

export function printTables(results: Results, all: Contender[]): void {
  for (const [w, byLabel] of Object.entries(results)) {
    console.log(`\n${w}: ${SECONDS} s measured, median of ${RUNS}; TTFT and end-to-end in ms; hit = the sims' Δ prefix_cache_hits / Δ queries (%); top = busiest instance's share of answers (%)`);
    console.log(`${'contender'.padEnd(40)}${pad('sent', 6)}${pad('TTFT p50', 10)}${pad('TTFT p99', 10)}${pad('e2e p99', 9)}${pad('answered/s', 12)}${pad('errors', 8)}${pad('hit', 7)}${pad('top', 6)}`);
    for (const c of all) {
      if (c.missing) {
        console.log(`${c.label.padEnd(40)}not available in this tree: ${c.missing}`);
        continue;
      }
      const rs = byLabel[c.label];
      if (!rs?.length) continue;
      const m = (f: (r: RunResult) => number) => median(rs.map(f));
      console.log(
        `${c.label.padEnd(40)}${pad(f0(m((r) => r.sent)), 6)}${pad(f0(m((r) => r.ttft.p50)), 10)}${pad(f0(m((r) => r.ttft.p99)), 10)}${pad(f0(m((r) => r.e2e.p99)), 9)}` +
          `${pad(m((r) => r.throughput).toFixed(2), 12)}${pad(f0(m((r) => r.errors)), 8)}${pad(pctText(m((r) => r.hitRate)), 7)}${pad(pctText(m(maxShare)), 6)}`,
      );
    }
  }
}

/** Median over runs of f(a[run]) / f(b[run]): each ratio between two contenders measured in the same run. */
function ratio(a: RunResult[] | undefined, b: RunResult[] | undefined, f: (r: RunResult) => number): number {
  if (!a?.length || !b?.length) return NaN;
  return median(a.slice(0, b.length).map((r, i) => f(r) / f(b[i])));
}

type Target = { what: string; a: string; b: string; f: (r: RunResult) => number; ok: (x: number) => boolean; bound: string; unit: string };

/** Throughput is compared within 1 %: with the same open-loop schedule every contender is offered the same requests, and timing noise alone moves answered/s by about that. */
const THROUGHPUT_TOLERANCE = 0.99;

function targetsOf(w: WorkloadName): Target[] {
  const p99 = (r: RunResult) => r.ttft.p99;
  const tput = (r: RunResult) => r.throughput;
  const hit = (r: RunResult) => r.hitRate;
  if (w === 'hot-prefix') return [{ what: 'TTFT p99', a: PREFIX, b: LEASTCONN, f: p99, ok: (x) => x <= 1, bound: '≤ 1', unit: 'ms' }];
  return [
    { what: 'TTFT p99', a: PREFIX, b: SGLANG, f: p99, ok: (x) => x <= 0.8, bound: '≤ 0.8', unit: 'ms' },
    { what: 'TTFT p99', a: PREFIX, b: LEASTCONN, f: p99, ok: (x) => x <= 0.5, bound: '≤ 0.5', unit: 'ms' },
    { what: 'throughput', a: PREFIX, b: SGLANG, f: tput, ok: (x) => x >= THROUGHPUT_TOLERANCE, bound: '≥ 1 (within 1 %)', unit: '/s' },
    { what: 'throughput', a: PREFIX, b: LEASTCONN, f: tput, ok: (x) => x >= THROUGHPUT_TOLERANCE, bound: '≥ 1 (within 1 %)', unit: '/s' },
    { what: 'hit rate', a: PREFIX, b: ORACLE, f: hit, ok: (x) => x >= 0.9, bound: '≥ 0.9', unit: '' },
  ];
}

/** Prints each target as MET / MISSED / not available; returns how many were missed. */
export function printTargets(results: Results, all: Contender[]): number {
  const missing = new Map(all.filter((c) => c.missing).map((c) => [c.label, c.missing]));
  let missed = 0;
  console.log('\ntargets (issue 19)');
  for (const [w, byLabel] of Object.entries(results) as [WorkloadName, Record<string, RunResult[]>][]) {
    for (const t of targetsOf(w)) {
      const head = `  ${w.padEnd(11)} ${t.what} ${t.a} / ${t.b} ${t.bound}: `;
      const gone = [t.a, t.b].find((l) => missing.has(l));
      if (gone) {
        console.log(`${head}not available in this tree (${gone}: ${missing.get(gone)})`);
        continue;
      }
      const a = byLabel[t.a];
      const b = byLabel[t.b];
      if (!a || !b) {
        console.log(`${head}not run (BENCH_SETUPS)`);
        continue;
      }
      const x = ratio(a, b, t.f);
      const figures = (rs: RunResult[]) => {
        const v = median(rs.map(t.f));
        return t.unit === '' ? `${pctText(v)} %` : `${t.unit === 'ms' ? f0(v) : v.toFixed(2)} ${t.unit}`;
      };
      if (!Number.isFinite(x)) {
        console.log(`${head}not available in this tree (no figure: ${t.what === 'hit rate' ? 'the sims report no prefix-cache counters' : 'no answers'})`);
        continue;
      }
      const ok = t.ok(x);
      if (!ok) missed++;
      console.log(`${head}${ok ? 'MET' : 'MISSED'} (${x.toFixed(2)}: ${figures(a)} vs ${figures(b)})`);
    }
  }
  return missed;
}

/** The Arus contenders' lost requests (nothing should fail on a healthy fleet); returns how many. */
export function printLost(results: Results, all: Contender[]): number {
  let lost = 0;
  for (const [w, byLabel] of Object.entries(results))
    for (const c of all.filter((x) => x.arus))
      for (const [i, r] of (byLabel[c.label] ?? []).entries())
        if (r.errors) {
          lost += r.errors;
          console.log(`LOST: ${w} run ${i + 1} ${c.label}: ${r.errors} of ${r.sent} requests failed ${JSON.stringify(r.statuses)}`);
        }
  return lost;
}
