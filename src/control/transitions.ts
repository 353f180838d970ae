// Every health transition as a history row: the tracker's events, capacity
// changes, and what a new snapshot changed — zones and regions going up or
// down, and the countries that moved, each move told as a failover or a failback.
import type { HealthEvent } from '../health/types.js';
import type { Logger } from '../log.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { ScaleEvent } from '../balancer/scale/report.js';
import type { CapacityChange } from './capacity.js';
import { countryMoves } from './moves.js';
import { hostnameChanges, statusChanges, statusOf, type Status } from './status.js';
import type { EventLog } from './storage.js';

export interface Transitions {
  /** What a publish changed, from the snapshot served before to the new one, published for `why`. */
  published(before: Snapshot, after: Snapshot, why: string): void;
  health(events: readonly HealthEvent[]): void;
  capacity(changes: readonly CapacityChange[]): void;
  /** A region's balancer's scaling steps (`at`: its clock, kept when within a few minutes of this one). */
  scaling(region: string, steps: readonly ScaleEvent[]): void;
}

const RANK = { down: 0, degraded: 1, up: 2 } as const;

/** How a region changed between two snapshots: > 0 better (health up, or sheds less), < 0 worse, 0 the same. */
function changed(region: string, before: Snapshot, was: Status, after: Snapshot, now: Status): number {
  const a = was.regions.get(region)?.status;
  const b = now.regions.get(region)?.status;
  if (a === undefined || b === undefined) return 0;
  if (RANK[b] !== RANK[a]) return RANK[b] - RANK[a];
  return Math.sign((before.capacity[region]?.shed ?? 0) - (after.capacity[region]?.shed ?? 0));
}

export function createTransitions(deps: { events: EventLog; log: Logger; now: () => number }): Transitions {
  const { events, log, now } = deps;

  return {
    published(before, after, why) {
      const at = now();
      const was = statusOf(before);
      const status = statusOf(after);
      for (const c of hostnameChanges(before, after))
        events.deferEvent({ time: at, kind: c.kind, subject: c.subject, oldState: c.oldState, newState: c.newState, reason: c.reason, region: c.region });
      for (const c of statusChanges(was, status))
        events.deferEvent({ time: at, kind: c.kind, subject: c.subject, oldState: c.oldState, newState: c.newState, reason: c.reason, region: c.region });
      for (const m of countryMoves(before, after)) {
        // Clients leaving a region that is down or got worse (drained, shedding more) fail over, even if
        // their destination came back in the same publish; clients returning to a region that got better
        // (came back up, sheds less) fail back; any other move (a configuration change) is a fail-over.
        const sourceBad = m.from !== undefined && (status.regions.get(m.from)?.status === 'down' || changed(m.from, before, was, after, status) < 0);
        const kind = !sourceBad && m.to !== undefined && changed(m.to, before, was, after, status) > 0 ? 'failback' : 'failover';
        const reason = `${m.countries.join(', ')}: ${m.service} moved ${m.from ?? 'nowhere'} → ${m.to ?? 'nowhere'} (${why})`;
        events.deferEvent({
          time: at,
          kind,
          subject: `service:${m.service}`,
          oldState: m.from ?? 'none',
          newState: m.to ?? 'none',
          reason,
          region: (kind === 'failover' ? m.from : m.to) ?? null,
          data: { countries: m.countries, from: m.from ?? null, to: m.to ?? null, service: m.service },
        });
        log.info({ kind, service: m.service, from: m.from, to: m.to, countries: m.countries.length }, kind);
      }
    },

    health(list) {
      // Stamped with the wall clock now: the tracker's clock measures durations, not dates.
      const at = now();
      for (const e of list) {
        events.deferEvent({ time: at, kind: e.kind, subject: e.subject, oldState: e.oldState, newState: e.newState, reason: e.reason, region: e.region ?? regionOf(e.subject) });
        if (e.kind !== 'agent.joined') log.info({ kind: e.kind, subject: e.subject, reason: e.reason }, 'health event');
      }
    },

    capacity(changes) {
      const at = now();
      for (const c of changes)
        events.deferEvent({ time: at, kind: c.kind, subject: `region:${c.region}`, oldState: `shed ${Math.round(c.from * 100)}%`, newState: `shed ${Math.round(c.to * 100)}%`, reason: c.reason, region: c.region });
    },

    scaling(region, steps) {
      const at = now();
      // A balancer's clock may be off: its time is kept only when it is plausible (within 5 minutes before now).
      for (const e of steps) events.deferEvent({ time: e.at <= at && e.at >= at - 300_000 ? e.at : at, kind: e.kind, subject: e.subject, oldState: e.oldState, newState: e.newState, reason: e.reason, region });
    },
  };
}

function regionOf(subject: string): string | undefined {
  const slash = subject.indexOf('/');
  return slash > 0 ? subject.slice(0, slash) : undefined;
}
