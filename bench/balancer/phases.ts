// The bench's three parts, each over RUNS runs with the order of its setups
// alternated run by run: the mixed workload, the proxy overhead and batching.
// Each prints a line per run and returns its results by setup label.
import { sleep } from '../common.js';
import { child } from './children.js';
import { embedRun, mixedRun, overheadRun, type Arrival, type LoopResult, type MixedResult } from './load.js';
import { RUNS, SECONDS, EMBED_MODEL } from './settings.js';
import { cpuSeconds, setups, waitHealthy, type Setup } from './setups.js';

/** What every part needs: HAProxy's folder, whether HAProxy is there, and the stops to run if a part fails half-way. */
export type PhaseContext = { dir: string; haproxy: boolean; cleanup: (() => Promise<void>)[] };
export type OverheadResult = LoopResult & { cpuUs: number };

/** The setups of one run without HAProxy's when it is missing; every other run in reverse order: slow drift of a shared machine should not favour one setup. */
function ordered(ctx: PhaseContext, run: number, list: Setup[]): Setup[] {
  return (run % 2 ? list : [...list].reverse()).filter((setup) => ctx.haproxy || !setup.label.startsWith('haproxy'));
}

export async function runMixed(ctx: PhaseContext, arrivals: Arrival[], warmup: Arrival[]): Promise<Record<string, MixedResult[]>> {
  const mixed: Record<string, MixedResult[]> = {};
  const sims = await child('sims', null);
  ctx.cleanup.push(sims.stop);
  const ports = sims.info.ports as number[];
  for (let run = 1; run <= RUNS; run++) {
    for (const setup of ordered(ctx, run, setups(ctx.dir, false))) {
      const s = await setup.start(ports);
      try {
        // The same warm-up for every setup (a balancer in service has seen traffic before), drained before the measured run.
        if (warmup.length) await mixedRun(s.port, warmup);
        const r = await mixedRun(s.port, arrivals);
        (mixed[setup.label] ??= []).push(r);
        console.log(
          `run ${run} ${setup.label.padEnd(24)} p50 ${r.all.p50.toFixed(0)} ms, p99 ${r.all.p99.toFixed(0)} ms (gen p99 ${r.chat.p99.toFixed(0)}, embed p99 ${r.embed.p99.toFixed(0)}), ` +
            `${r.completedPerSec.toFixed(2)} completed/s, errors ${r.errors}${r.errors ? ` ${JSON.stringify(r.statuses)}${r.unfinished ? ` unfinished ${r.unfinished}` : ''}` : ''}` +
            (Object.keys(r.spread).length ? `, generations per instance ${JSON.stringify(r.spread)}` : ''),
        );
      } finally {
        await s.stop();
      }
      await sleep(500);
    }
  }
  await sims.stop();
  ctx.cleanup.pop();
  return mixed;
}

export async function runOverhead(ctx: PhaseContext): Promise<Record<string, OverheadResult[]>> {
  const over: Record<string, OverheadResult[]> = {};
  const tiny = await child('tiny', null);
  ctx.cleanup.push(tiny.stop);
  const ports = tiny.info.ports as number[];
  for (let run = 1; run <= RUNS; run++) {
    for (const setup of ordered(ctx, run, setups(ctx.dir, true))) {
      const s = await setup.start(ports);
      try {
        await overheadRun(s.port, 2); // warm-up: JIT, connections
        const cpu0 = cpuSeconds(s.pid);
        const r = { ...(await overheadRun(s.port, SECONDS)), cpuUs: NaN };
        // The proxy's own CPU per answered request: on a shared machine this varies far less than req/s.
        r.cpuUs = ((cpuSeconds(s.pid) - cpu0) * 1e6) / (r.rps * SECONDS);
        (over[setup.label] ??= []).push(r);
        console.log(
          `run ${run} overhead ${setup.label.padEnd(20)} ${Math.round(r.rps)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, errors ${r.errors}` +
            (Number.isFinite(r.cpuUs) ? `, proxy CPU ${r.cpuUs.toFixed(0)} µs/req` : ''),
        );
      } finally {
        await s.stop();
      }
    }
  }
  return over;
}

export async function runBatching(ctx: PhaseContext): Promise<Record<string, LoopResult[]>> {
  const batch: Record<string, LoopResult[]> = {};
  const sims = await child('embedsims', null);
  ctx.cleanup.push(sims.stop);
  const ports = sims.info.ports as number[];
  for (let run = 1; run <= RUNS; run++) {
    // Alternate which goes first: slow drift of a shared machine should not favour one side.
    const order = run % 2 ? [false, true] : [true, false];
    for (const batching of order) {
      const label = batching ? 'batched' : 'unbatched';
      const c = await child('arus', { strategy: 'gpu', ports, model: EMBED_MODEL, batching });
      const port = c.info.port as number;
      try {
        await waitHealthy(port);
        await embedRun(port, 2); // warm-up
        const r = await embedRun(port, SECONDS);
        (batch[label] ??= []).push(r);
        console.log(`run ${run} batching ${label.padEnd(10)} ${Math.round(r.rps)} calls/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, errors ${r.errors}`);
      } finally {
        await c.stop();
      }
    }
  }
  await sims.stop();
  ctx.cleanup.pop();
  return batch;
}
