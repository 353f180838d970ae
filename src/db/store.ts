import { and, asc, desc, eq, gt, gte, lt, type SQL } from 'drizzle-orm';
import type { Config, RegionDoc, ZoneDoc } from '../config/schema.js';
import { metaCounter } from './counter.js';
import type { Db } from './database.js';
import { guardOf, storageFault, type StorageGuard } from './faults.js';
import * as schema from './schema.js';

/** One row of the history, as the API and CLI show it. */
export type StoredEvent = {
  id: number;
  /** Unix time in milliseconds. */
  time: number;
  kind: string;
  subject: string;
  oldState: string;
  newState: string;
  reason: string;
  region: string | null;
  data: unknown;
};

export type NewEvent = Omit<StoredEvent, 'id' | 'time' | 'region' | 'data'> & { time?: number; region?: string | null; data?: unknown };

/** The documents an apply writes: the zone's settings and any number of regions. */
export type Documents = { zone?: ZoneDoc; regions: RegionDoc[] };

/**
 * What makes a document valid: the configuration layer's rules, given to the
 * store (which knows tables, not schemas). Each throws its own error (a
 * ConfigError) naming the source, field and reason.
 */
export type DocumentRules = {
  parseZone(input: unknown, source: string): ZoneDoc;
  parseRegion(input: unknown, source: string): RegionDoc;
  /** Throws when the whole configuration would be invalid. */
  validate(docs: Documents): unknown;
  /** The error for one region given twice in the same apply. */
  duplicate(source: string, id: string): Error;
};

export type ApplyOptions = {
  /** Written as the events' reason instead of the generated one. */
  reason?: string;
  /** Who applied it (a token's name, `cli`, `seed`); kept in the events' data. */
  actor?: string;
};

export type ApplyResult = {
  /** The configuration version after the call (unchanged when nothing changed). */
  version: number;
  /** Subjects of the documents written: `zone-settings`, `region:<id>`. */
  changed: string[];
};

export type EventQuery = {
  /** At most this many, newest first; 100 unless set, capped at 1000. */
  limit?: number;
  /** Only events with an id below this (the previous page's last id). */
  before?: number;
  /** Only events with an id above this, OLDEST first (for followers such as the event stream). */
  after?: number;
  kind?: string;
  region?: string;
  /** Only events at or after this time (ms). */
  since?: number;
  /** Only events before this time (ms). */
  until?: number;
};

/** The control plane's configuration and history, backed by SQLite. */
export interface Store {
  /** The whole configuration; undefined until zone settings have been applied. */
  getConfig(): Config | undefined;
  /** True when there are neither zone settings nor regions. */
  isEmpty(): boolean;
  /**
   * Upserts documents in one transaction. The resulting whole configuration
   * is validated first; when invalid nothing is written and a ConfigError is
   * thrown. Unchanged documents are skipped; each changed one gets a
   * `config.applied` event, and the version goes up by one if anything changed.
   */
  apply(docs: Documents, opts?: ApplyOptions): ApplyResult;
  /**
   * Deletes a region in one transaction; refused (ConfigError) when the rest
   * of the configuration still names it — unless `unlinkServices`, which also
   * takes it out of every service's `regions` list.
   */
  deleteRegion(id: string, opts?: ApplyOptions & { unlinkServices?: boolean }): { version: number; deleted: boolean };
  /** The configuration version counter: 0 before the first apply. */
  version(): number;
  /** Writes an events row now; inside `transaction()` it is part of it. Throws a StorageError when the database cannot take it. */
  recordEvent(event: NewEvent): StoredEvent;
  /**
   * Records an event now if the database takes it, else keeps it (in order,
   * at most `maxPendingEvents`, the oldest dropped) for `flushEvents()`: for
   * history written by background work, which must not fail with the disk.
   */
  deferEvent(event: NewEvent): void;
  /** Writes the kept events, in one transaction; false when the database still cannot take them. */
  flushEvents(): boolean;
  /** Events kept for later, and events dropped because too many were kept. */
  pending(): { events: number; dropped: number };
  listEvents(query?: EventQuery): StoredEvent[];
  /** Runs `fn` in one transaction: everything it writes is there whole or not at all. */
  transaction<T>(fn: () => T): T;
  /** The connection's storage faults and back-off, shared with the other stores over it. */
  readonly guard: StorageGuard;
}

export const ZONE_SUBJECT = 'zone-settings';
export const regionSubject = (id: string) => `region:${id}`;

const VERSION_KEY = 'config_version';

/** JSON with object keys sorted, so equal documents compare equal as text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

// Top-level fields whose values differ, for a readable reason.
function changedFields(before: object, after: object): string[] {
  const a = before as Record<string, unknown>;
  const b = after as Record<string, unknown>;
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => canonicalJson(a[k]) !== canonicalJson(b[k])).sort();
}

/** `onEvent` sees every events row as it is written (metrics count them). */
export function createStore(db: Db, opts: { rules: DocumentRules; now?: () => number; onEvent?: (e: StoredEvent) => void; maxPendingEvents?: number }): Store {
  const { parseZone, parseRegion, validate } = opts.rules;
  const now = opts.now ?? Date.now;
  const { zoneSettings, regions, events } = schema;
  const guard = guardOf(db);
  const maxPending = opts.maxPendingEvents ?? 10_000;
  let pending: NewEvent[] = [];
  let dropped = 0;

  // What is stored was valid when written; parse again so a schema change is caught here, not in DNS.
  const readZone = (): ZoneDoc | undefined => {
    const row = db.select().from(zoneSettings).where(eq(zoneSettings.id, 1)).get();
    return row && parseZone(JSON.parse(row.doc), `database: ${ZONE_SUBJECT}`);
  };
  const readRegions = (): RegionDoc[] =>
    db
      .select()
      .from(regions)
      .orderBy(regions.id)
      .all()
      .map((row) => parseRegion(JSON.parse(row.doc), `database: ${regionSubject(row.id)}`));

  const { get: version, bump: bumpVersion } = metaCounter(db, VERSION_KEY);

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
    return { ...row, data: row.data === null ? null : JSON.parse(row.data) };
  };
  const recordEvent = (e: NewEvent): StoredEvent => {
    const stored = insertEvent(e);
    opts.onEvent?.(stored);
    return stored;
  };

  const describe = (what: string, before: object | undefined, after: object, by?: string) =>
    `${what} ${before ? `updated (${changedFields(before, after).join(', ')})` : 'created'}${by ? ` by ${by}` : ''}`;

  return {
    getConfig() {
      const zone = readZone();
      return zone && { zone, regions: readRegions() };
    },

    isEmpty() {
      return !db.select({ id: zoneSettings.id }).from(zoneSettings).get() && !db.select({ id: regions.id }).from(regions).get();
    },

    apply(docs, o = {}) {
      const zone = docs.zone && parseZone(docs.zone, ZONE_SUBJECT);
      const incoming = docs.regions.map((r) => parseRegion(r, regionSubject(typeof r?.id === 'string' ? r.id : '?')));
      const seen = new Set<string>();
      for (const r of incoming) {
        if (seen.has(r.id)) throw opts.rules.duplicate(regionSubject(r.id), r.id);
        seen.add(r.id);
      }

      return guard.write(() => db.transaction(() => {
        const currentZone = readZone();
        const current = new Map(readRegions().map((r) => [r.id, r]));
        const merged = new Map(current);
        for (const r of incoming) merged.set(r.id, r);
        validate({ zone: zone ?? currentZone, regions: [...merged.values()] });

        const t = now();
        const changed: string[] = [];
        const data = (before: object | undefined, after: object) => ({ actor: o.actor ?? null, fields: before ? changedFields(before, after) : null });

        if (zone && (!currentZone || canonicalJson(zone) !== canonicalJson(currentZone))) {
          const doc = canonicalJson(zone);
          db.insert(zoneSettings)
            .values({ id: 1, doc, createdAt: t, updatedAt: t })
            .onConflictDoUpdate({ target: zoneSettings.id, set: { doc, updatedAt: t } })
            .run();
          changed.push(ZONE_SUBJECT);
          recordEvent({
            time: t,
            kind: 'config.applied',
            subject: ZONE_SUBJECT,
            oldState: currentZone ? 'present' : 'absent',
            newState: 'present',
            reason: o.reason ?? describe(`zone settings for ${zone.apex}`, currentZone, zone, o.actor),
            data: data(currentZone, zone),
          });
        }
        for (const r of incoming) {
          const before = current.get(r.id);
          if (before && canonicalJson(before) === canonicalJson(r)) continue;
          const doc = canonicalJson(r);
          db.insert(regions)
            .values({ id: r.id, doc, createdAt: t, updatedAt: t })
            .onConflictDoUpdate({ target: regions.id, set: { doc, updatedAt: t } })
            .run();
          changed.push(regionSubject(r.id));
          recordEvent({
            time: t,
            kind: 'config.applied',
            subject: regionSubject(r.id),
            oldState: before ? 'present' : 'absent',
            newState: 'present',
            reason: o.reason ?? describe(`region ${r.id}`, before, r, o.actor),
            region: r.id,
            data: data(before, r),
          });
        }
        return { version: changed.length > 0 ? bumpVersion() : version(), changed };
      }));
    },

    deleteRegion(id, o = {}) {
      return guard.write(() => db.transaction(() => {
        const rest = readRegions();
        if (!rest.some((r) => r.id === id)) return { version: version(), deleted: false };
        const zone = readZone();
        const unlinked =
          zone && o.unlinkServices && zone.services.some((s) => s.regions?.includes(id))
            ? { ...zone, services: zone.services.map((s) => (s.regions ? { ...s, regions: s.regions.filter((r) => r !== id) } : s)) }
            : undefined;
        if (zone) validate({ zone: unlinked ?? zone, regions: rest.filter((r) => r.id !== id) });
        if (unlinked) {
          const t = now();
          db.update(zoneSettings).set({ doc: canonicalJson(unlinked), updatedAt: t }).where(eq(zoneSettings.id, 1)).run();
          recordEvent({
            time: t,
            kind: 'config.applied',
            subject: ZONE_SUBJECT,
            oldState: 'present',
            newState: 'present',
            reason: `region ${id} removed from the regions of ${zone!.services.filter((s) => s.regions?.includes(id)).map((s) => s.name).join(', ')}${o.actor ? ` by ${o.actor}` : ''}`,
            data: { actor: o.actor ?? null, fields: ['services'] },
          });
        }
        db.delete(regions).where(eq(regions.id, id)).run();
        recordEvent({
          kind: 'config.deleted',
          subject: regionSubject(id),
          oldState: 'present',
          newState: 'absent',
          reason: o.reason ?? `region ${id} deleted${o.actor ? ` by ${o.actor}` : ''}`,
          region: id,
          data: { actor: o.actor ?? null },
        });
        return { version: bumpVersion(), deleted: true };
      }));
    },

    version,
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

    transaction: (fn) => guard.write(() => db.transaction(() => fn())),
    guard,

    listEvents(q = {}) {
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
        .map((row) => ({ ...row, data: row.data === null ? null : JSON.parse(row.data) }));
    },
  };
}
