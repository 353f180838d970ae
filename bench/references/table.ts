// The result: one Markdown table of every server's medians as ratios against
// Arus, then how each ran.
import { cpus, hostname } from 'node:os';
import { median } from '../common.js';
import type { Bench } from './context.js';
import type { Result } from './load.js';
import type { Server } from './processes.js';
import { FAILOVER_RUNS, RUNS, SECONDS } from './settings.js';

export type Measured = { results: Map<Server, Result[]>; rss: Map<Server, number>; failovers: Map<Server, number[]> };

const n = (x: number, digits = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a');
const ratio = (x: number, base: number) => (Number.isFinite(x) && Number.isFinite(base) && base > 0 ? (x / base).toFixed(2) : '–');

export function printTable({ servers, arus }: Bench, { results, rss, failovers }: Measured): void {
  const a = { qps: median(results.get(arus)?.map((r) => r.qps) ?? []), p99: median(results.get(arus)?.map((r) => r.p99ms) ?? []), rss: rss.get(arus) ?? NaN, fo: median(failovers.get(arus) ?? []) };
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  console.log(`\n${new Date().toISOString().slice(0, 10)}, ${hostname()}: ${cpus().length} × ${cpu}; median of ${RUNS} × ${SECONDS} s (load) and ${FAILOVER_RUNS} fail-overs\n`);
  console.log('| server | answered q/s | × Arus | p99 ms | × Arus | RSS MiB | × Arus | fail over s | × Arus |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const s of servers) {
    if (s.failed) {
      console.log(`| ${s.label} | not run: ${s.failed.replace(/\|/g, '/').slice(0, 200)} | | | | | | | |`);
      continue;
    }
    const rs = results.get(s) ?? [];
    const qps = median(rs.map((r) => r.qps));
    const p99 = median(rs.map((r) => r.p99ms));
    const mem = rss.get(s) ?? NaN;
    const fo = s.health ? median(failovers.get(s) ?? []) : NaN;
    const foText = s.health ? n(fo, 2) : 'n/a: no health checks';
    if (s.failoverOnly) {
      console.log(`| ${s.label} | not loaded | | | | | | ${foText} | ${ratio(fo, a.fo)} |`);
      continue;
    }
    console.log(`| ${s.label} | ${n(qps)} | ${ratio(qps, a.qps)} | ${n(p99, 2)} | ${ratio(p99, a.p99)} | ${n(mem, 1)} | ${ratio(mem, a.rss)} | ${foText} | ${s.health ? ratio(fo, a.fo) : '–'} |`);
  }
  for (const s of servers.filter((x) => x.name.startsWith('arus') && x.name !== 'arus-w0' && !x.failoverOnly && !x.failed)) {
    const p99 = median(results.get(s)?.map((r) => r.p99ms) ?? []);
    console.log(`\ntarget: ${s.label}: p99 at saturation ≤ 1 ms beside gdnsd and Knot: ${n(p99, 2)} ms — ${p99 <= 1 ? 'met' : 'MISSED'}`);
  }
  console.log('\nhow each ran:');
  for (const s of servers) for (const note of s.notes) console.log(`- ${note}`);
  console.log(`- fail over, every run: ${servers.filter((s) => failovers.has(s) && s.health).map((s) => `${s.name} ${failovers.get(s)!.map((x) => x.toFixed(2)).join('/')}`).join('; ')}`);
}
