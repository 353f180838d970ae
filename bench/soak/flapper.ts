// The flapper: one endpoint at a time (at most MAX_DOWN unavailable with the
// writer's drains) killed, crashed or made to fail its checks, held down
// 4–15 s and brought back, each outage timed for the checker.
import { sleep } from '../common.js';
import { expectExit, kill, startArus } from './processes.js';
import { MAX_DOWN, between, pick } from './settings.js';
import { available, closeOutage, unavailable, type Endpoint, type Soak } from './state.js';

/** The endpoint's model server: `arus sim` on its port. */
export async function startSim(soak: Soak, e: Endpoint): Promise<void> {
  const { proc } = await startArus(['sim', '--listen', `127.0.0.1:${e.port}`], `sim ${e.zone}`, soak.counts.crashes);
  e.proc = proc;
}

async function fault(soak: Soak, e: Endpoint, kind: 'crash' | 'error' | 'none'): Promise<void> {
  // A standalone sim whose listener closes has nothing left to run and exits (0), as a crashed server would.
  if (kind === 'crash') expectExit(e.proc!);
  if (kind === 'none' && e.how === 'crash') {
    // Its listener (admin route included) is gone: restarted, as a supervisor would.
    await kill(e.proc!);
    await startSim(soak, e);
    return;
  }
  const res = await fetch(`http://127.0.0.1:${e.port}/admin/fault`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind }) });
  if (!res.ok) throw new Error(`fault ${kind} on ${e.zone}: ${res.status}`);
  await res.arrayBuffer();
}

/** Takes an endpoint down one of three ways, holds it down 4–15 s, brings it back. */
async function flap(soak: Soak, e: Endpoint): Promise<void> {
  const how = pick(['kill', 'crash', 'error'] as const);
  e.how = how;
  soak.counts.flaps[how]++;
  if (how === 'kill') await kill(e.proc!);
  else await fault(soak, e, how);
  e.deadSince = Date.now();
  e.seenDuringOutage = undefined;
  await sleep(between(4000, 15_000));
  closeOutage(soak, e, e.deadSince, how);
  // Up again from the moment it is being restored: later answers with it are right.
  e.deadSince = undefined;
  if (how === 'kill') await startSim(soak, e);
  else await fault(soak, e, 'none');
  e.how = undefined;
}

/** Flaps an endpoint every 1.5–4 s until 20 s before `end`, then waits for the last to come back. */
export async function flapper(soak: Soak, end: number): Promise<void> {
  const running: Promise<void>[] = [];
  while (Date.now() < end - 20_000) {
    await sleep(between(1500, 4000));
    if (unavailable(soak) >= MAX_DOWN) continue;
    const e = pick(available(soak));
    e.busy = true;
    running.push(flap(soak, e).finally(() => (e.busy = false)));
  }
  await Promise.all(running);
}
