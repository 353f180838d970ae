// The memory of `arus up` over the soak: its RSS every 5 s (with a progress
// line every minute) and the trend through the heap's saw-tooth.
import { readFileSync } from 'node:fs';
import type { Soak } from './state.js';

export type RssSample = { t: number; rss: number };

const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024; // MiB

/** Samples the RSS of `pid` from now (t = 0 at `start`) until stop(), which takes a last sample. */
export function sampleRss(soak: Soak, pid: number, start: number): { samples: RssSample[]; stop(): void } {
  const { counts, wrong } = soak;
  const rss: RssSample[] = [];
  const sampler = setInterval(() => {
    // every 5 s; a progress line every minute
    try {
      rss.push({ t: (Date.now() - start) / 1000, rss: rssOf(pid) });
      const last = rss[rss.length - 1];
      if (rss.length % 12 === 1)
        console.log(`t=${Math.round(last.t)} s  rss ${last.rss.toFixed(1)} MiB  checker ${counts.checkerQueries} queries, ${wrong.length} wrong  flaps ${counts.flaps.kill + counts.flaps.crash + counts.flaps.error}  drains ${counts.drains}  crashes ${counts.crashes.length}`);
    } catch {
      // the process is gone: counted as a crash by its exit handler
    }
  }, 5000);
  rss.push({ t: 0, rss: rssOf(pid) });
  return {
    samples: rss,
    stop() {
      clearInterval(sampler);
      rss.push({ t: (Date.now() - start) / 1000, rss: rssOf(pid) });
    },
  };
}

/** Least-squares slope of (t s, rss MiB) in MiB per hour. */
export function slope(samples: RssSample[]): number {
  const n = samples.length;
  if (n < 2) return NaN;
  const mt = samples.reduce((s, x) => s + x.t, 0) / n;
  const mr = samples.reduce((s, x) => s + x.rss, 0) / n;
  const cov = samples.reduce((s, x) => s + (x.t - mt) * (x.rss - mr), 0);
  const vt = samples.reduce((s, x) => s + (x.t - mt) ** 2, 0);
  return (cov / vt) * 3600;
}

/** The median RSS of each third of the run: the heap's saw-tooth swings tens of MiB between collections, these show a trend through it. */
export function thirds(rss: RssSample[], elapsed: number): number[] {
  return [0, 1, 2].map((i) => {
    const xs = rss.filter((s) => s.t >= (elapsed * i) / 3 && s.t < (elapsed * (i + 1)) / 3 + 0.001).map((s) => s.rss).sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)] ?? NaN;
  });
}
