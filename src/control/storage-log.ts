// What control says and records about its storage: the database stopping and
// starting to take writes, and probe reports refused with 429 (`probe.limited`).
import type { Logger } from '../log.js';
import type { EventLog, WriteGuard } from './storage.js';

export interface StorageLog {
  /** The reminder while writes fail, and the refusals not yet recorded; run every tick. */
  check(): void;
  /** Counts a refused report: the first of a minute is recorded at once, the rest together a minute later. */
  limited(agent: string, why: 'rate' | 'agents'): void;
}

/**
 * Says when the database stops and starts taking writes (once each, with a
 * reminder at most every minute), records both in the history once it can,
 * and records refused probe reports as at most one `probe.limited` event a minute.
 */
export function createStorageLog(deps: { events: EventLog; guard: WriteGuard; log: Logger; now: () => number }): StorageLog {
  const { events, guard, log, now } = deps;
  let lastReminder = 0;
  let limited = new Map<string, { rate: number; agents: number }>();
  let others = 0;
  let lastLimitedEvent = -Infinity;

  guard.subscribe((change) => {
    if (change.failing) {
      log.warn({ kind: change.error.kind, code: change.error.code, err: change.error.message }, 'database cannot take writes: serving from memory, retrying with back-off');
      lastReminder = now();
      events.deferEvent({ kind: 'storage.failed', subject: 'database', oldState: 'writable', newState: change.error.kind, reason: `${change.error.message}: DNS answers from memory meanwhile` });
    } else {
      const pending = events.pending();
      log.info({ afterMs: Math.round(change.afterMs), pendingEvents: pending.events, droppedEvents: pending.dropped }, 'database takes writes again');
      events.deferEvent({
        kind: 'storage.recovered', subject: 'database', oldState: change.kind, newState: 'writable',
        reason: `the database took writes again after ${(change.afterMs / 1000).toFixed(1)} s; events kept meanwhile are written with their own times${pending.dropped ? ` (${pending.dropped} dropped so far: too many kept)` : ''}`,
      });
    }
  });

  /** One event for the refusals since the last one. */
  function recordLimited(): void {
    const agents = [...limited].map(([agent, n]) => ({ agent, ...n }));
    const total = agents.reduce((n, a) => n + a.rate + a.agents, 0) + others;
    const named = agents.slice(0, 5).map((a) => `${a.agent} (${a.rate ? `${a.rate} over its rate` : `${a.agents} past the agent limit`})`);
    events.deferEvent({
      kind: 'probe.limited', subject: 'probes', oldState: 'accepted', newState: 'limited',
      reason: `${total} probe report${total === 1 ? '' : 's'} refused with 429: ${named.join(', ')}${agents.length > 5 || others ? ' and others' : ''}`,
      data: { agents, others },
    });
    log.warn({ refused: total, agents: agents.length }, 'probe reports refused');
    limited = new Map();
    others = 0;
    lastLimitedEvent = now();
  }

  return {
    check() {
      const s = guard.stats();
      if (s.failing && now() - lastReminder >= 60_000) {
        lastReminder = now();
        log.warn({ kind: s.failing.kind, since: s.failing.since, pendingEvents: events.pending().events, err: s.failing.message }, 'database still cannot take writes');
      }
      if (limited.size + others > 0 && Math.abs(now() - lastLimitedEvent) >= 60_000) recordLimited();
    },
    limited(agent, why) {
      const n = limited.get(agent) ?? (limited.size < 100 ? { rate: 0, agents: 0 } : undefined);
      if (n) {
        n[why]++;
        limited.set(agent, n);
      } else others++;
      if (Math.abs(now() - lastLimitedEvent) >= 60_000) recordLimited();
    },
  };
}
