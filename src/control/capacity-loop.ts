// The capacity loop: balancer reports and time passing change how much each
// region sheds; every change is history and a new snapshot.
import type { RegionCapacity } from '../snapshot/snapshot.js';
import type { BalancerEvidence } from './balancer-evidence.js';
import type { CapacityChange, CapacityReport, CapacityTracker } from './capacity.js';
import type { Publisher } from './publish.js';
import type { Transitions } from './transitions.js';

export interface CapacityLoop {
  /** A balancer's report: may start or stop shedding clients to the next region. */
  report(report: CapacityReport): void;
  /** Forgets reports gone stale as of `t` (the monotonic clock). */
  tick(t: number): void;
  view(): { regions: Readonly<Record<string, RegionCapacity>>; reports: CapacityReport[] };
}

export function createCapacityLoop(deps: {
  capacity: CapacityTracker;
  /** The monotonic clock (ms). */
  mono: () => number;
  transitions: Pick<Transitions, 'capacity' | 'scaling'>;
  publisher: Pick<Publisher, 'publish'>;
  /** The balancers' claims that their region cannot serve: a change is published at once. */
  evidence?: BalancerEvidence;
}): CapacityLoop {
  const { capacity, mono, transitions, publisher, evidence } = deps;

  /** `claims`: what the balancers' evidence changed, named in the failover it causes. */
  function changed(changes: readonly CapacityChange[], claims: string | undefined): void {
    if (changes.length) transitions.capacity(changes);
    if (changes.length || claims) publisher.publish(claims ?? 'capacity changed');
  }

  return {
    // Judged by receipt time on control's own clock: a balancer's clock may be off, and the wall clock may jump.
    report({ events, ...r }) {
      if (events?.length) transitions.scaling(r.region, events);
      const at = mono();
      const claims = evidence?.report({ ...r, at });
      changed(capacity.report({ ...r, at }, at), claims);
    },
    tick: (t) => changed(capacity.tick(t), evidence?.tick(t)),
    view: () => ({ regions: capacity.current(), reports: capacity.reports() }),
  };
}
