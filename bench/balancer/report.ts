// The bench's summary: one table per part (medians over the runs) and the
// ratios against HAProxy (or unbatched) that the targets are stated in.
import { median } from '../common.js';
import type { LoopResult, MixedResult } from './load.js';
import type { OverheadResult } from './phases.js';
import { BATCH_MAX, BATCH_WINDOW_MS, CONCURRENCY, EMBED_CONCURRENCY, HAPROXY_THREADS, RUNS, SECONDS } from './settings.js';

const pad = (s: string, n: number) => s.padStart(n);
const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');

/** Median over runs of a[run] / b[run]: each ratio is taken between two setups measured in the same run. */
function medianRatio<T>(a: T[] | undefined, b: T[] | undefined, f: (r: T) => number): number {
  if (!a || !b) return NaN;
  return median(a.slice(0, b.length).map((r, i) => f(r) / f(b[i])));
}

export function printMixed(mixed: Record<string, MixedResult[]>): void {
  if (!Object.keys(mixed).length) return;
  console.log(`\nmixed workload (median of ${RUNS}; latency of answered requests, ms)`);
  console.log(`${'setup'.padEnd(24)}${pad('p50', 7)}${pad('p99', 7)}${pad('gen p50', 9)}${pad('gen p99', 9)}${pad('emb p50', 9)}${pad('emb p99', 9)}${pad('done/s', 8)}${pad('errors', 8)}`);
  for (const [label, rs] of Object.entries(mixed)) {
    const m = (f: (r: MixedResult) => number) => median(rs.map(f));
    console.log(
      `${label.padEnd(24)}${pad(f0(m((r) => r.all.p50)), 7)}${pad(f0(m((r) => r.all.p99)), 7)}${pad(f0(m((r) => r.chat.p50)), 9)}${pad(f0(m((r) => r.chat.p99)), 9)}` +
        `${pad(f0(m((r) => r.embed.p50)), 9)}${pad(f0(m((r) => r.embed.p99)), 9)}${pad(m((r) => r.completedPerSec).toFixed(2), 8)}${pad(f0(m((r) => r.errors)), 8)}`,
    );
  }
  const lc = mixed['haproxy leastconn'];
  if (lc) {
    console.log(`\nratios to HAProxy leastconn measured in the same run (median over runs): p50, p99, generations p99, done/s`);
    for (const [label, rs] of Object.entries(mixed))
      console.log(
        `${label.padEnd(24)}${pad(medianRatio(rs, lc, (r) => r.all.p50).toFixed(2), 7)}${pad(medianRatio(rs, lc, (r) => r.all.p99).toFixed(2), 7)}` +
          `${pad(medianRatio(rs, lc, (r) => r.chat.p99).toFixed(2), 9)}${pad(medianRatio(rs, lc, (r) => r.completedPerSec).toFixed(2), 8)}`,
      );
  }
  const ratio = medianRatio(mixed['arus gpu'], lc, (r) => r.all.p99);
  if (Number.isFinite(ratio)) console.log(`\ngpu-aware p99 / HAProxy leastconn p99: ${ratio.toFixed(2)}  (target ≤ 0.8: ${ratio <= 0.8 ? 'met' : 'MISSED'})`);
  const genRatio = medianRatio(mixed['arus gpu'], lc, (r) => r.chat.p99);
  if (Number.isFinite(genRatio)) console.log(`  generations only: ${genRatio.toFixed(2)}`);
}

export function printOverhead(over: Record<string, OverheadResult[]>): void {
  if (!Object.keys(over).length) return;
  console.log(`\nproxy overhead: 1-ms backend (2 instances), ${CONCURRENCY} closed-loop clients, ${SECONDS} s (median of ${RUNS}); HAProxy nbthread ${HAPROXY_THREADS}`);
  console.log(`${'setup'.padEnd(24)}${pad('req/s', 9)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}${pad('errors', 8)}${pad('CPU µs/req', 12)}`);
  for (const [label, rs] of Object.entries(over)) {
    const m = (f: (r: OverheadResult) => number) => median(rs.map(f));
    console.log(
      `${label.padEnd(24)}${pad(f0(m((r) => r.rps)), 9)}${pad(m((r) => r.p50).toFixed(2), 9)}${pad(m((r) => r.p99).toFixed(2), 9)}${pad(f0(m((r) => r.errors)), 8)}${pad(f0(m((r) => r.cpuUs)), 12)}`,
    );
  }
  const ratio = medianRatio(over['arus round-robin'], over['haproxy roundrobin'], (r) => r.rps);
  if (Number.isFinite(ratio)) console.log(`\nproxy throughput Arus / HAProxy: ${ratio.toFixed(2)}  (target ≥ 0.5: ${ratio >= 0.5 ? 'met' : 'MISSED'})`);
  const cpuRatio = medianRatio(over['haproxy roundrobin'], over['arus round-robin'], (r) => r.cpuUs);
  if (Number.isFinite(cpuRatio)) console.log(`proxy CPU per request HAProxy / Arus: ${cpuRatio.toFixed(2)}  (the throughput ratio each would reach with a core to itself)`);
}

export function printBatching(batch: Record<string, LoopResult[]>): void {
  if (!Object.keys(batch).length) return;
  console.log(`\nbatching: single-input embeddings, ${EMBED_CONCURRENCY} closed-loop clients, 2 embedding instances (20 ms per call + 1 ms per input), ${SECONDS} s (median of ${RUNS}); window ${BATCH_WINDOW_MS} ms, max ${BATCH_MAX}`);
  console.log(`${'setup'.padEnd(24)}${pad('calls/s', 9)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}${pad('errors', 8)}`);
  for (const [label, rs] of Object.entries(batch)) {
    const m = (f: (r: LoopResult) => number) => median(rs.map(f));
    console.log(`${label.padEnd(24)}${pad(f0(m((r) => r.rps)), 9)}${pad(m((r) => r.p50).toFixed(1), 9)}${pad(m((r) => r.p99).toFixed(1), 9)}${pad(f0(m((r) => r.errors)), 8)}`);
  }
  const ratio = medianRatio(batch.batched, batch.unbatched, (r) => r.rps);
  const p99Ratio = medianRatio(batch.batched, batch.unbatched, (r) => r.p99);
  if (Number.isFinite(ratio))
    console.log(`\nbatched / unbatched throughput: ${ratio.toFixed(2)}, p99 ${p99Ratio.toFixed(2)}  (target ≥ 2 at p99 ≤ 1: ${ratio >= 2 && p99Ratio <= 1 ? 'met' : 'MISSED'})`);
}
