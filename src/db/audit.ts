import { and, desc, eq, gte, lt, type SQL } from 'drizzle-orm';
import type { Role } from './tokens.js';
import { guardOf } from './faults.js';
import * as schema from './schema.js';
import type { Db } from './database.js';

/** One write through the API. */
export type AuditEntry = {
  id: number;
  /** Unix time in milliseconds. */
  time: number;
  /** The token's name. */
  actor: string;
  role: Role;
  /** e.g. `PUT /v1/regions/sg`. */
  action: string;
  /** e.g. `region:sg`. */
  subject: string;
  /** The subject before the write; null when it did not exist. */
  before: unknown;
  /** The subject after the write; null when it no longer exists. */
  after: unknown;
  /** The HTTP status of the answer. */
  status: number;
};

export type NewAuditEntry = Omit<AuditEntry, 'id' | 'time' | 'before' | 'after'> & { time?: number; before?: unknown; after?: unknown };

export type AuditQuery = {
  /** Only entries at or after this time (ms). */
  since?: number;
  /** Only entries before this time (ms). */
  until?: number;
  actor?: string;
  subject?: string;
  /** Only entries with an id below this: the previous page's `next`. */
  cursor?: number;
  /** At most this many, newest first; 100 unless set, clamped to 1..1000. */
  limit?: number;
};

export type AuditPage = { entries: AuditEntry[]; next?: number };

export interface AuditStore {
  record(entry: NewAuditEntry): AuditEntry;
  /** Newest first; `next` is set when there are older entries, and is the cursor that fetches them. */
  list(query?: AuditQuery): AuditPage;
}

const fromJson = (text: string | null): unknown => (text === null ? null : JSON.parse(text));
const toJson = (value: unknown): string | null => (value === undefined || value === null ? null : JSON.stringify(value));

export function createAuditStore(db: Db, opts: { now?: () => number } = {}): AuditStore {
  const now = opts.now ?? Date.now;
  const { audit } = schema;
  const guard = guardOf(db);
  const toEntry = (row: typeof audit.$inferSelect): AuditEntry => ({ ...row, role: row.role as Role, before: fromJson(row.before), after: fromJson(row.after) });

  return {
    record(e) {
      const row = guard.write(() => db
        .insert(audit)
        .values({
          time: e.time ?? now(),
          actor: e.actor,
          role: e.role,
          action: e.action,
          subject: e.subject,
          before: toJson(e.before),
          after: toJson(e.after),
          status: e.status,
        })
        .returning()
        .get());
      return toEntry(row);
    },

    list(q = {}) {
      const where: SQL[] = [];
      if (q.since !== undefined) where.push(gte(audit.time, q.since));
      if (q.until !== undefined) where.push(lt(audit.time, q.until));
      if (q.actor !== undefined) where.push(eq(audit.actor, q.actor));
      if (q.subject !== undefined) where.push(eq(audit.subject, q.subject));
      if (q.cursor !== undefined) where.push(lt(audit.id, q.cursor));
      const limit = Math.min(Math.max(Math.trunc(q.limit ?? 100) || 1, 1), 1000);
      // One row past the page says whether there is a next one.
      const rows = db
        .select()
        .from(audit)
        .where(and(...where))
        .orderBy(desc(audit.id))
        .limit(limit + 1)
        .all();
      const entries = rows.slice(0, limit).map(toEntry);
      return rows.length > limit ? { entries, next: entries[entries.length - 1].id } : { entries };
    },
  };
}
