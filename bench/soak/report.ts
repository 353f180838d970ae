// The soak's verdict: one table of everything counted, the first wrong
// answers and every crash.
import type { IntervalHistogram } from 'node:perf_hooks';
import type { Perf } from './dnsperf.js';
import { slope, thirds, type RssSample } from './rss.js';
import type { Soak } from './state.js';

export type Run = { perf: Perf; rss: RssSample[]; start: number; elapsed: number; upAlive: boolean; loopDelay: IntervalHistogram };

/** Per outage kind: the slowest removal, the median, and how many outages were seen in an answer at all. */
function removalText(soak: Soak): string {
  return Object.entries(soak.removals)
    .map(([kind, xs]) => {
      const s = [...xs].sort((a, b) => a - b);
      return `${kind} ${s.at(-1) ?? '-'} (${s.length ? s[Math.floor(s.length / 2)] : '-'}; ${s.filter((x) => x > 0).length}/${s.length} seen)`;
    })
    .join(', ');
}

/** The checker's unanswered queries in 5 s buckets. */
function timeline(soak: Soak, start: number): string {
  const buckets = new Map<number, number>();
  for (const t of soak.timeouts) buckets.set(Math.floor((t - start) / 5000) * 5, (buckets.get(Math.floor((t - start) / 5000) * 5) ?? 0) + 1);
  return [...buckets].map(([t, n]) => `${t}: ${n}`).join(', ').slice(0, 400) || 'none';
}

export function printReport(soak: Soak, { perf, rss, start, elapsed, upAlive, loopDelay }: Run): void {
  const { counts, latencies, wrong } = soak;
  const maxRss = Math.max(...rss.map((s) => s.rss));
  const secondHalf = rss.filter((s) => s.t >= elapsed / 2);
  const byThird = thirds(rss, elapsed);
  const removals = removalText(soak);
  latencies.sort((a, b) => a - b);
  const q = (f: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * f))] ?? NaN;
  console.log(`\nArus soak, ${elapsed.toFixed(0)} s (${new Date().toISOString().slice(0, 10)})`);
  console.table({
    'dnsperf queries sent / answered': `${perf.sent} / ${perf.completed} (${Math.round(perf.qps)} q/s)`,
    'dnsperf lost (timed out)': perf.lost,
    'dnsperf response codes': Object.entries(perf.rcodes).map(([k, v]) => `${k} ${v}`).join(', '),
    'checker queries': counts.checkerQueries,
    'wrong answers (dead or drained > budget)': wrong.length,
    'checker unanswered / SERVFAIL / other rcode / empty / unknown address': `${counts.dnsTimeouts} / ${counts.dnsServfail} / ${counts.dnsOtherRcode} / ${counts.dnsEmpty} / ${counts.dnsUnknownAddress}`,
    'checker latency p50 / p99 / max (ms), answers after 2 s': `${q(0.5)} / ${q(0.99)} / ${latencies.at(-1) ?? NaN}, ${latencies.filter((x) => x > 2000).length}`,
    'checker unanswered in 5 s buckets (t: n)': timeline(soak, start),
    'slowest removal seen, ms (median; outages seen in an answer at all)': removals,
    'soak process event-loop delay p99 / max (ms)': `${(loopDelay.percentile(99) / 1e6).toFixed(0)} / ${(loopDelay.max / 1e6).toFixed(0)}`,
    'flaps: killed / crashed / failing': `${counts.flaps.kill} / ${counts.flaps.crash} / ${counts.flaps.error}`,
    'API writes: drains / weight PATCHes / TTL PATCHes': `${counts.drains} / ${counts.weightWrites} / ${counts.ttlWrites}`,
    'API ok / 4xx / 5xx / failed': `${counts.api.ok} / ${counts.api.status4xx} / ${counts.api.status5xx} / ${counts.api.failed}`,
    'arus error logs': counts.arusErrorLogs,
    crashes: counts.crashes.length,
    'RSS start / end / max (MiB)': `${rss[0].rss.toFixed(1)} / ${rss.at(-1)!.rss.toFixed(1)} / ${maxRss.toFixed(1)}`,
    'RSS median of each third of the run (MiB)': byThird.map((x) => x.toFixed(1)).join(' → '),
    'RSS slope, whole run / second half (MiB/h)': `${slope(rss).toFixed(1)} / ${slope(secondHalf).toFixed(1)}`,
  });
  for (const w of wrong.slice(0, 20)) console.log(`wrong: ${w}`);
  for (const c of counts.crashes) console.log(`crash: ${c}`);
  if (!upAlive) console.log('arus up was not running at the end');
}
