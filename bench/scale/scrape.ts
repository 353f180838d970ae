// Each balancer's /metrics every SCRAPE_MS: its queue depth, ready instances
// and the model pool's scaling gauges (current, desired, warming, draining);
// and the processes a balancer child has started (the local scaler's
// `arus sim`s), to check at the end that none is left.
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'undici';
import { MODEL, SCRAPE_MS } from './settings.js';

/** One scrape (t: ms after t0). The pool gauges are undefined when the balancer does not export them. */
export type FleetSample = { t: number; queue: number; ready: number; current?: number; desired?: number; warming?: number; draining?: number };

const POOL_GAUGES = { current: 'arus_balancer_pool_current_instances', desired: 'arus_balancer_pool_desired_instances', warming: 'arus_balancer_pool_warming_instances', draining: 'arus_balancer_pool_draining_instances' } as const;

/** The first value of `name` whose labels include every one of `labels` (`k="v"`), NaN when none. */
export function metricValue(text: string, name: string, labels: string[] = []): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    if (labels.every((l) => (m[2] ?? '').includes(l))) return Number(m[3]);
  }
  return NaN;
}

export function parseFleet(text: string, t: number): FleetSample {
  const pool = (name: string) => {
    const v = metricValue(text, name, [`model="${MODEL}"`]);
    return Number.isFinite(v) ? v : undefined;
  };
  return {
    t,
    queue: metricValue(text, 'arus_balancer_queue_depth'),
    ready: metricValue(text, 'arus_balancer_instances', ['state="ready"']),
    current: pool(POOL_GAUGES.current),
    desired: pool(POOL_GAUGES.desired),
    warming: pool(POOL_GAUGES.warming),
    draining: pool(POOL_GAUGES.draining),
  };
}

/** Scrapes `port` every SCRAPE_MS from now until stop(); t is measured from `t0` (performance.now()). */
export function startScraper(port: number, t0: number): { stop(): Promise<FleetSample[]> } {
  const samples: FleetSample[] = [];
  let stopped = false;
  const loop = (async () => {
    let next = performance.now();
    while (!stopped) {
      const t = performance.now() - t0;
      try {
        const r = await request(`http://127.0.0.1:${port}/metrics`, { headersTimeout: 2000, bodyTimeout: 2000 });
        const text = await r.body.text();
        if (r.statusCode === 200) samples.push(parseFleet(text, t));
      } catch {
        // A missed scrape leaves a gap; the integration holds the last value over it.
      }
      next += SCRAPE_MS;
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      else next = performance.now();
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return samples;
    },
  };
}

const cmdlineOf = (pid: number | string) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();

/** Pids whose parent is `pid`, with their command lines (from /proc). */
export function childrenOf(pid: number): Map<number, string> {
  const out = new Map<number, string>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.set(Number(name), cmdlineOf(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Whether `pid` still runs `cmdline` (a reused pid runs something else); a zombie counts as gone. */
export function stillRuns(pid: number, cmdline: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    return cmdlineOf(pid) === cmdline;
  } catch {
    return false;
  }
}
