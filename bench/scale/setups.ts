// The three setups: one region's balancer each (a child process running
// startBalancer), in front of its configured simulated GPUs (another child);
// the Arus one also runs the local scaler, whose `arus sim` processes are
// the balancer child's children. Stopping a setup checks none of them is left.
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { serveChild, type Child } from '../balancer/children.js';
import { sleep } from '../common.js';
import { processCpuSeconds } from './cpu.js';
import { childrenOf, stillRuns } from './scrape.js';
import type { ArusArg, SimsArg } from './serve.js';
import { N_AVERAGE, N_PEAK, ONLY } from './settings.js';

const entry = fileURLToPath(new URL('../scale.ts', import.meta.url));

export type SetupKey = 'peak' | 'average' | 'arus';
export type SetupSpec = { key: SetupKey; label: string; instances: number; autoscale: boolean };
export type RunningSetup = {
  spec: SetupSpec;
  port: number;
  /** CPU seconds used so far by the setup's processes: the sims, the balancer, and the instances its scaler runs or ran. */
  cpuSeconds(): number;
  /** Stops the balancer (and the scaler's instances with it) and the sims; returns the processes that had to be killed. */
  stop(): Promise<string[]>;
};

export function specs(autoscale: boolean): SetupSpec[] {
  const all: SetupSpec[] = [
    { key: 'peak', label: `static peak (${N_PEAK})`, instances: N_PEAK, autoscale: false },
    { key: 'average', label: `static average (${N_AVERAGE})`, instances: N_AVERAGE, autoscale: false },
    { key: 'arus', label: autoscale ? 'arus local scaler' : 'arus (stand-in: no scaler)', instances: 1, autoscale },
  ];
  return all.filter((s) => !ONLY || ONLY.some((x) => s.key.includes(x) || s.label.includes(x)));
}

/** Waits until the balancer's /healthz counts every configured instance ready. */
async function waitReady(port: number, want: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      const r = await request(`http://127.0.0.1:${port}/healthz`, { headersTimeout: 1000 });
      const body = (await r.body.json()) as { instances?: { ready: number } };
      if (r.statusCode === 200 && (body.instances?.ready ?? 0) >= want) return;
    } catch {
      // not yet
    }
    await sleep(100);
  }
  throw new Error(`balancer on ${port}: ${want} instances not ready after 20 s`);
}

/** Starts `spec`'s sims and balancer; `cleanup` gets the stops at once, so a failure or Ctrl-C later still stops them. */
export async function startSetup(spec: SetupSpec, logFile: string | undefined, cleanup: (() => Promise<unknown>)[]): Promise<RunningSetup> {
  const sims: Child = await serveChild(entry, 'sims', { n: spec.instances } satisfies SimsArg);
  cleanup.push(() => sims.stop());
  const ports = sims.info.ports as number[];
  const balancer: Child = await serveChild(entry, 'arus', { ports, autoscale: spec.autoscale, logFile } satisfies ArusArg);
  // The processes the balancer starts (the local scaler's instances), seen every 500 ms while it runs.
  const started = new Map<number, string>();
  const look = () => {
    if (balancer.child.pid) for (const [pid, cmd] of childrenOf(balancer.child.pid)) started.set(pid, cmd);
  };
  const watch = setInterval(look, 500);
  let stopped: Promise<string[]> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      clearInterval(watch);
      look();
      await balancer.stop();
      await sims.stop();
      // A balancer killed before its scaler stopped them leaves its instances to end with their stdin: give them 5 s.
      for (let i = 0; i < 50 && [...started].some(([pid, cmd]) => stillRuns(pid, cmd)); i++) await sleep(100);
      const left = [...started].filter(([pid, cmd]) => stillRuns(pid, cmd));
      for (const [pid] of left) process.kill(pid, 'SIGKILL');
      return left.map(([pid, cmd]) => `${pid} ${cmd}`);
    })());
  cleanup.push(stop);
  const port = balancer.info.port as number;
  await waitReady(port, spec.instances);
  const cpuSeconds = () => {
    const live = balancer.child.pid ? [...childrenOf(balancer.child.pid).keys()] : [];
    return [sims.child.pid, balancer.child.pid, ...live].reduce((sum: number, pid) => sum + (pid ? processCpuSeconds(pid) : 0), 0);
  };
  return { spec, port, cpuSeconds, stop };
}
