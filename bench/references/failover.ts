// Fail over: both Jakarta model servers die; each server with health checks is
// asked from Indonesia every 100 ms until no answer holds a Jakarta address.
// Then they come back and every server must return to Jakarta before the next run.
import { sleep } from '../common.js';
import type { Bench } from './context.js';
import { startSim, stopProc, type Server } from './processes.js';
import { FAILOVER_RUNS, ZONE } from './settings.js';

/** Seconds from the kill to the first answer without Jakarta, per server and run (NaN after 120 s). */
export async function measureFailover(b: Bench): Promise<Map<Server, number[]>> {
  console.log(`\nfail over: ${FAILOVER_RUNS} run(s); both Jakarta model servers SIGKILLed, each server polled every 100 ms from 36.66.0.0/24`);
  const failovers = new Map<Server, number[]>(b.live().map((s) => [s, []]));
  for (let run = 1; run <= FAILOVER_RUNS; run++) {
    const t0 = Date.now();
    await Promise.all(b.jkt.endpoints.map((e) => stopProc(b.sims.get(e.zone)!.proc!)));
    await Promise.all(
      b
        .live()
        .filter((s) => s.health)
        .map((s) => timeFailover(b, s, t0, failovers.get(s)!)),
    );
    console.log(`run ${run}: ${b.live().filter((s) => s.health).map((s) => `${s.name} ${failovers.get(s)!.at(-1)!.toFixed(2)} s`).join(', ')}`);
    await restoreJakarta(b);
  }
  return failovers;
}

async function timeFailover(b: Bench, s: Server, t0: number, times: number[]): Promise<void> {
  for (;;) {
    const a = await b.asker.ask(s.port, `api.${ZONE}`, '36.66.0.0/24', 500);
    if (a[0] !== 'timeout' && !a.some((x) => b.jktAddresses.has(x))) return void times.push((Date.now() - t0) / 1000);
    if (Date.now() - t0 > 120_000) return void times.push(NaN);
    await sleep(100);
  }
}

/** Jakarta's model servers started again, and every server with health checks back on Jakarta (at most 180 s). */
async function restoreJakarta(b: Bench): Promise<void> {
  for (const e of b.jkt.endpoints) b.sims.get(e.zone)!.proc = await startSim(b.sims.get(e.zone)!.port);
  const t1 = Date.now();
  for (const s of b.live().filter((x) => x.health))
    while (!(await b.asker.ask(s.port, `api.${ZONE}`, '36.66.0.0/24', 500)).some((x) => b.jktAddresses.has(x)) && Date.now() - t1 < 180_000) await sleep(200);
  // gdnsd answers its first choice when every region is down too: give its rise (4 checks × 3 s) time to be real.
  await sleep(15_000);
}
