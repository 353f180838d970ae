// How busy the machine was while the load ran, and how much of that was the
// bench's own processes: on a shared 2-core machine, a setup's latency says
// little without it. Linux /proc only; elsewhere every figure is NaN.
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

/** Machine-wide busy share of all cores over one second (t: ms after t0), and the 1-min load average then. */
export type CpuSample = { t: number; busy: number; load: number };

function machineTicks(): { busy: number; total: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - f[3] - (f[4] ?? 0), total };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

/** Samples the machine every second from now until stop(). */
export function startCpuSampler(t0: number): { stop(): CpuSample[] } {
  const samples: CpuSample[] = [];
  let last = machineTicks();
  const timer = setInterval(() => {
    const now = machineTicks();
    samples.push({ t: performance.now() - t0, busy: (now.busy - last.busy) / (now.total - last.total), load: loadavg()[0] });
    last = now;
  }, 1000);
  return {
    stop() {
      clearInterval(timer);
      return samples;
    },
  };
}

/**
 * CPU seconds a process has used (user + system), with its children that
 * exited and were reaped (cutime, cstime: the scaler's drained instances).
 */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100; // clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
}

export const CORES = cpus().length;
