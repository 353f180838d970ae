// What the bench prints and writes: the table over time (10-s rows in the
// terminal, 5-s rows in the CSV), the Arus fleet's raw scrapes, the scaling
// events, the per-setup summary, and each target MET or MISSED with its figure.
import { readFileSync, writeFileSync } from 'node:fs';
import { median } from '../common.js';
import type { Bucket, Summary } from './analyze.js';
import type { CpuSample } from './cpu.js';
import type { FleetSample } from './scrape.js';
import type { SetupSpec } from './setups.js';
import { rateAt } from './settings.js';

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');
const pad = (s: string, n: number) => s.padStart(n);
const SHORT: Record<string, string> = { peak: 'peak', average: 'avg', arus: 'arus' };

export function printTable(rows: Bucket[], specs: SetupSpec[], width: number): void {
  console.log(
    `\nover time (${width / 1000}-s rows by request start; latency of answered requests, ms; q: the balancer's largest queue depth scraped; ` +
      `Arus pool: mean current instances, most desired / warming / draining)`,
  );
  let head = `${pad('t s', 5)}${pad('req/s', 6)}`;
  for (const s of specs) head += ` |${pad(`${SHORT[s.key]} n`, 7)}${pad('fail', 5)}${pad('p50', 6)}${pad('p99', 7)}${pad('q', 5)}`;
  head += ' |  cur des warm drain';
  console.log(head);
  for (const b of rows) {
    let line = `${pad(f0(b.from / 1000), 5)}${pad(f0(rateAt(b.from)), 6)}`;
    for (const s of specs) {
      const p = b.per[s.key];
      line += ` |${pad(String(p.requests), 7)}${pad(String(p.failed), 5)}${pad(f0(p.p50), 6)}${pad(f0(p.p99), 7)}${pad(f0(p.queueMax), 5)}`;
    }
    const f = b.fleet;
    line += f ? ` |${pad(f1(f.currentMean), 5)}${pad(f0(f.desiredMax), 4)}${pad(f0(f.warmingMax), 5)}${pad(f0(f.drainingMax), 6)}` : ' |    -';
    console.log(line);
  }
}

export function writeCsv(path: string, rows: Bucket[], specs: SetupSpec[], cpu?: CpuSample[]): void {
  const cols = ['t_start_s', 't_end_s', 'offered_rate'];
  for (const s of specs) cols.push(...['requests', 'failed', 'p50_ms', 'p99_ms', 'queue_max'].map((c) => `${s.key}_${c}`));
  cols.push('arus_current_mean', 'arus_current_max', 'arus_desired_max', 'arus_warming_max', 'arus_draining_max', 'arus_ready_max');
  if (cpu) cols.push('machine_cpu_busy_pct', 'load_avg_1m');
  const lines = [cols.join(',')];
  const v = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '' : String(Math.round(x * 100) / 100));
  for (const b of rows) {
    const cells = [v(b.from / 1000), v(b.to / 1000), v(rateAt(b.from))];
    for (const s of specs) {
      const p = b.per[s.key];
      cells.push(v(p.requests), v(p.failed), v(p.p50), v(p.p99), v(p.queueMax));
    }
    const f = b.fleet;
    cells.push(v(f?.currentMean), v(f?.currentMax), v(f?.desiredMax), v(f?.warmingMax), v(f?.drainingMax), v(f?.readyMax));
    if (cpu) {
      const mine = cpu.filter((c) => c.t > b.from && c.t <= b.to);
      cells.push(v(mine.length ? (mine.reduce((a, c) => a + c.busy, 0) / mine.length) * 100 : NaN), v(mine.at(-1)?.load));
    }
    lines.push(cells.join(','));
  }
  writeFileSync(path, `${lines.join('\n')}\n`);
}

export function writeFleetCsv(path: string, fleet: FleetSample[]): void {
  const v = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '' : String(x));
  const lines = ['t_s,current,desired,warming,draining,ready,queue', ...fleet.map((f) => [(f.t / 1000).toFixed(3), v(f.current), v(f.desired), v(f.warming), v(f.draining), v(f.ready), v(f.queue)].join(','))];
  writeFileSync(path, `${lines.join('\n')}\n`);
}

export type ScaleEvent = { t: number; kind: string; subject: string; from: string; to: string; reason: string };

/** The scaler's events from the Arus balancer's log (pino lines with msg `scaling`), t in ms after t0. */
export function readEvents(path: string, t0Epoch: number): ScaleEvent[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out: ScaleEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('"scaling"')) continue;
    try {
      const e = JSON.parse(line) as { time: number; msg: string; kind: string; subject: string; from: string; to: string; reason: string };
      if (e.msg === 'scaling') out.push({ t: e.time - t0Epoch, kind: e.kind, subject: e.subject, from: e.from, to: e.to, reason: e.reason });
    } catch {
      // a partial line
    }
  }
  return out;
}

export function printEvents(events: ScaleEvent[], max = 40): void {
  if (!events.length) return;
  console.log(`\nscaling events (the Arus balancer's log; t s after the start)`);
  const why = (e: ScaleEvent) => e.kind === 'scale.up' || e.kind === 'scale.down' || e.kind.endsWith('failed') || e.kind.endsWith('lost');
  for (const e of events.slice(0, max)) console.log(`${pad((e.t / 1000).toFixed(1), 7)}  ${e.kind.padEnd(24)} ${e.subject.replace(/^(pool|instance):bench\//, '')}: ${e.from} -> ${e.to}${why(e) ? `  (${e.reason})` : ''}`);
  if (events.length > max) console.log(`  … ${events.length - max} more in the log`);
}

export function printSummary(all: Summary[][], runs: number): void {
  const m = (key: string, f: (s: Summary) => number) => median(all.map((run) => run.find((s) => s.key === key)).filter((s): s is Summary => s !== undefined).map(f));
  console.log(`\nper setup (${runs === 1 ? 'one run' : `median of ${runs} runs`}; latency of answered requests, ms; failed: non-2xx, errors and no answer within the drain)`);
  console.log(`${'setup'.padEnd(30)}${pad('requests', 9)}${pad('failed', 8)}${pad('p50', 7)}${pad('p99', 7)}${pad('p50 out', 9)}${pad('p99 out', 9)}${pad('inst-s', 8)}  instance-seconds from; failures by status`);
  for (const s of all.at(-1)!) {
    const k = s.key;
    console.log(
      `${s.label.padEnd(30)}${pad(f0(m(k, (x) => x.requests)), 9)}${pad(f0(m(k, (x) => x.failed)), 8)}${pad(f0(m(k, (x) => x.whole.p50)), 7)}${pad(f0(m(k, (x) => x.whole.p99)), 7)}` +
        `${pad(f0(m(k, (x) => x.outsideLag.p50)), 9)}${pad(f0(m(k, (x) => x.outsideLag.p99)), 9)}${pad(f0(m(k, (x) => x.instanceSeconds)), 8)}  ${s.instanceSecondsFrom}${runs === 1 && s.failed ? `; ${JSON.stringify(s.statuses)}` : ''}`,
    );
  }
  console.log(`  ("out": requests started outside the Arus scale-up lag window, the same windows for every setup)`);
}

export type Targets = { isRatio: number; p99Ratio: number; arusFailed: number; avgFailed: number; avgP99Ratio: number; spikeP99Ratio: number; peakFailed: number };

/** The per-run figures the targets are stated in; those of a setup not run are NaN. */
export function targetsOf(s: Summary[]): Targets {
  const by = (k: string) => s.find((x) => x.key === k);
  const [peak, avg, arus] = [by('peak'), by('average'), by('arus')];
  return {
    isRatio: arus && peak ? arus.instanceSeconds / peak.instanceSeconds : NaN,
    p99Ratio: arus && peak ? arus.outsideLag.p99 / peak.outsideLag.p99 : NaN,
    arusFailed: arus?.failed ?? NaN,
    avgFailed: avg?.failed ?? NaN,
    avgP99Ratio: avg && peak ? avg.whole.p99 / peak.whole.p99 : NaN,
    spikeP99Ratio: arus && peak ? arus.spikeAfterLag.p99 / peak.spikeAfterLag.p99 : NaN,
    peakFailed: peak?.failed ?? NaN,
  };
}

export function printTargets(all: Targets[]): void {
  const m = (f: (t: Targets) => number) => median(all.map(f));
  const verdict = (ok: boolean, measured: number) => (Number.isNaN(measured) ? 'NOT MEASURED' : ok ? 'MET' : 'MISSED');
  const isRatio = m((t) => t.isRatio);
  const p99Ratio = m((t) => t.p99Ratio);
  const arusFailed = m((t) => t.arusFailed);
  const avgFailed = m((t) => t.avgFailed);
  const avgP99 = m((t) => t.avgP99Ratio);
  const scope = all.length === 1 ? 'this run' : `median of ${all.length} runs, each ratio within its run`;
  console.log(`\ntargets (${scope})`);
  console.log(`  Arus instance-seconds / static peak's: ${f2(isRatio)} (${f0((1 - isRatio) * 100)} % fewer; target ≤ 0.70): ${verdict(isRatio <= 0.7, isRatio)}`);
  console.log(`  Arus p99 outside the scale-up lag / static peak's over the same windows: ${f2(p99Ratio)} (target ≤ 1.5): ${verdict(p99Ratio <= 1.5, p99Ratio)}`);
  console.log(`    (the spike after the lag alone: ${f2(m((t) => t.spikeP99Ratio))})`);
  console.log(`  Arus failed requests: ${f0(arusFailed)} (target 0): ${verdict(arusFailed === 0, arusFailed)}`);
  const shown = avgFailed > 0 || avgP99 >= 3;
  console.log(`  static average shown failing the spike (failed > 0 or whole-run p99 ≥ 3 × peak's): failed ${f0(avgFailed)}, p99 ${f2(avgP99)} × peak's: ${verdict(shown, avgP99)}`);
}

/** The bench's own checks where a figure must be 0: printed, never the exit code. */
export function printAsserts(all: Targets[]): void {
  for (const [name, f] of [
    ['Arus failed requests', (t: Targets) => t.arusFailed],
    ['static peak failed requests', (t: Targets) => t.peakFailed],
  ] as const) {
    const worst = Math.max(...all.map(f));
    if (Number.isNaN(worst)) continue;
    console.log(`  assert ${name} = 0: ${worst === 0 ? 'ok' : `FAILED (${worst}${all.length > 1 ? ' in the worst run' : ''})`}`);
  }
}
