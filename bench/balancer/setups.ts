// What is measured: each Arus strategy and each HAProxy balance in front of
// the same instances (or, in the overhead run, no proxy at all), started and
// stopped alike, and the CPU a proxy process used.
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { strategies } from '../../src/config/schema.js';
import { sleep } from '../common.js';
import { child } from './children.js';
import { startHaproxy } from './haproxy.js';
import { ARUS_MAX_CONCURRENT, CONCURRENCY, SETUPS } from './settings.js';

export type Setup = { label: string; start(ports: number[]): Promise<{ port: number; pid?: number; stop(): Promise<void> }> };

export async function waitHealthy(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      const r = await request(`http://127.0.0.1:${port}/health`, { headersTimeout: 1000 });
      await r.body.dump();
      if (r.statusCode === 200) return;
    } catch {
      // not yet
    }
    await sleep(100);
  }
  throw new Error(`balancer on ${port} not healthy after 10 s`);
}

/** CPU seconds (user + system) a process has used so far, from /proc; NaN where there is none. */
export function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
}

/** The setups of the mixed runs (filtered by BENCH_SETUPS) or of the overhead run; HAProxy's configurations go in `dir`. */
export function setups(dir: string, overhead: boolean): Setup[] {
  // In the overhead run neither proxy may queue: HAProxy's servers have no maxconn, so Arus's cap is the clients' number.
  const maxConcurrent = overhead ? (ARUS_MAX_CONCURRENT ?? CONCURRENCY) : ARUS_MAX_CONCURRENT;
  const arus = (strategy: string): Setup => ({
    label: `arus ${strategy}`,
    async start(ports) {
      const c = await child('arus', { strategy, ports, maxConcurrent });
      const port = c.info.port as number;
      await waitHealthy(port);
      // Let a second readiness round scrape fresh /metrics gauges before traffic.
      await sleep(1200);
      return { port, pid: c.child.pid, stop: c.stop };
    },
  });
  const ha = (balance: 'roundrobin' | 'leastconn'): Setup => ({ label: `haproxy ${balance}`, start: (ports) => startHaproxy(dir, balance, ports) });
  if (overhead) return [{ label: 'direct (no proxy)', start: (ports) => Promise.resolve({ port: ports[0], stop: () => Promise.resolve() }) }, arus('round-robin'), ha('roundrobin')];
  const mine = strategies.filter((s) => s !== 'weighted');
  return [...mine.map(arus), ha('roundrobin'), ha('leastconn')].filter((s) => !SETUPS || SETUPS.some((x) => s.label.includes(x)));
}
