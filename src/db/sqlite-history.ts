// The events history in SQLite's `events` table, with the queue of events
// deferred while the database refuses writes.
import { and, asc, desc, eq, gt, gte, lt, type SQL } from 'drizzle-orm';
import type { Db } from './database.js';
import { storageFault, type StorageGuard } from './faults.js';
import type { EventHistory, EventQuery, NewEvent, StoredEvent } from './history.js';
import * as schema from './schema.js';

export type SqliteHistoryOptions = {
  guard: StorageGuard;
  now: () => number;
  /** Sees every events row as it is written (metrics count them). */
  onEvent?: (e: StoredEvent) => void;
  maxPendingEvents?: number;
};

const fromRow = (row: typeof schema.events.$inferSelect): StoredEvent => ({ ...row, data: row.data === null ? null : (JSON.parse(row.data) as unknown) });

/** The history over `db`'s events table; `recordEvent` joins the caller's transaction when there is one. */
export function createSqliteHistory(db: Db, opts: SqliteHistoryOptions): EventHistory {
  const { guard, now } = opts;
  const { events } = schema;
  const maxPending = opts.maxPendingEvents ?? 10_000;
  let pending: NewEvent[] = [];
  let dropped = 0;

  const insertEvent = (e: NewEvent): StoredEvent => {
    const row = guard.write(() => db
      .insert(events)
      .values({
        time: e.time ?? now(),
        kind: e.kind,
        subject: e.subject,
        oldState: e.oldState,
        newState: e.newState,
        reason: e.reason,
        region: e.region ?? null,
        data: e.data === undefined ? null : JSON.stringify(e.data),
      })
      .returning()
      .get());
    return fromRow(row);
  };
  const recordEvent = (e: NewEvent): StoredEvent => {
    const stored = insertEvent(e);
    opts.onEvent?.(stored);
    return stored;
  };

  return {
    recordEvent,

    deferEvent(e) {
      const event = { ...e, time: e.time ?? now() };
      if (pending.length === 0 && guard.retryDue()) {
        try {
          recordEvent(event);
          return;
        } catch (err) {
          if (!storageFault(err)) throw err;
        }
      }
      pending.push(event);
      if (pending.length > maxPending) {
        dropped += pending.length - maxPending;
        pending = pending.slice(pending.length - maxPending);
      }
    },

    flushEvents() {
      if (pending.length === 0) return true;
      // A copy: an event deferred while this runs (the guard's listeners) stays for the next flush.
      const batch = [...pending];
      let stored: StoredEvent[];
      try {
        stored = guard.write(() => db.transaction(() => batch.map(insertEvent)));
      } catch (err) {
        if (!storageFault(err)) throw err;
        return false;
      }
      pending = pending.slice(batch.length);
      for (const e of stored) opts.onEvent?.(e);
      return true;
    },

    pending: () => ({ events: pending.length, dropped }),

    listEvents: (q = {}) => listEvents(db, q),
  };
}

// Newest first, or oldest first after an id (followers); the limit clamped to 1..1000.
function listEvents(db: Db, q: EventQuery): StoredEvent[] {
  const { events } = schema;
  const where: SQL[] = [];
  if (q.before !== undefined) where.push(lt(events.id, q.before));
  if (q.after !== undefined) where.push(gt(events.id, q.after));
  if (q.kind !== undefined) where.push(eq(events.kind, q.kind));
  if (q.region !== undefined) where.push(eq(events.region, q.region));
  if (q.since !== undefined) where.push(gte(events.time, q.since));
  if (q.until !== undefined) where.push(lt(events.time, q.until));
  const limit = Math.min(Math.max(Math.trunc(q.limit ?? 100), 1), 1000);
  return db
    .select()
    .from(events)
    .where(and(...where))
    .orderBy(q.after !== undefined ? asc(events.id) : desc(events.id))
    .limit(limit)
    .all()
    .map(fromRow);
}
