// The balancer's capacity report to control: on a schedule (reportEveryMs),
// and at once when an instance turns not ready or is ejected, since control
// takes a report of no ready instance as evidence that the region cannot
// serve (control/balancer-evidence.ts). It says which instances cannot take
// requests, and why.
import type { Logger } from '../log.js';
import type { Pool } from './pool.js';
import type { CapacityReport } from '../control/capacity.js';
import type { PoolFigures, ScaleEvent } from './scale/report.js';
import type { InstanceState } from './types.js';

const MAX_EVENTS_PER_REPORT = 100;

/** Where capacity reports go: control's API, or control itself in `arus up`. */
export type CapacitySink = (report: Omit<CapacityReport, 'at'>) => Promise<void> | void;

/** The instances that cannot take a request now, and why (at most 50: a report stays small). */
export function unavailableOf(states: readonly InstanceState[], now: number): { id: string; reason: string }[] {
  const out: { id: string; reason: string }[] = [];
  for (const s of states) {
    if (out.length >= 50) break;
    if (!s.ready) out.push({ id: s.instance.id, reason: 'not ready: its health check fails (model not loaded, or the server down)' });
    else if (s.draining) out.push({ id: s.instance.id, reason: 'draining: scaled down, its requests in flight finishing' });
    else if (s.ejectedUntil !== undefined && s.ejectedUntil > now) out.push({ id: s.instance.id, reason: `ejected for ${Math.ceil((s.ejectedUntil - now) / 1000)} s after consecutive failed requests` });
  }
  return out;
}

/** A report now; never rejects (a failed one is logged, the next one tried). A change while one is on its way sends another after it. */
export function createCapacityReporter(deps: {
  region: string;
  id: string;
  sink?: CapacitySink;
  pool: Pick<Pool, 'capacity' | 'states'>;
  queueDepth: () => number;
  /** The pools' scaling figures, and the steps not yet delivered (acknowledged once a report carrying them was accepted). */
  scaling?: { figures(): PoolFigures[]; events(): readonly ScaleEvent[]; ack(n: number): void };
  log: Logger;
}): () => Promise<void> {
  let reporting = false;
  let again = false;
  return async function report(): Promise<void> {
    if (!deps.sink) return;
    if (reporting) return void (again = true);
    reporting = true;
    try {
      do {
        again = false;
        const c = deps.pool.capacity();
        const events = deps.scaling?.events().slice(0, MAX_EVENTS_PER_REPORT) ?? [];
        await deps.sink({
          region: deps.region,
          balancer: deps.id,
          instances: c.instances,
          ready: c.ready,
          outstanding: c.outstanding,
          freeConcurrency: c.freeConcurrency ?? 0,
          queueDepth: deps.queueDepth(),
          kvHeadroom: c.kvHeadroom,
          unavailable: unavailableOf(deps.pool.states(), Date.now()),
          ...(deps.scaling ? { pools: deps.scaling.figures().slice(0, 100) } : {}),
          ...(events.length ? { events } : {}),
        });
        // Delivered: the next report carries the steps that came after.
        if (events.length) {
          deps.scaling!.ack(events.length);
          if (deps.scaling!.events().length) again = true;
        }
      } while (again);
    } catch (err) {
      deps.log.debug({ err }, 'capacity report failed');
    } finally {
      reporting = false;
    }
  };
}
