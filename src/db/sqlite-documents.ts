// The configuration documents in SQLite (`zone_settings`, `regions`) and the
// configuration version counter: what apply and deleteRegion write, validated
// whole first, each change recorded as a `config.*` event in the same transaction.
import { eq } from 'drizzle-orm';
import type { RegionDoc, ZoneDoc } from '../config/schema.js';
import { metaCounter } from './counter.js';
import type { Db } from './database.js';
import {
  canonicalJson,
  changedFields,
  regionSubject,
  ZONE_SUBJECT,
  type ApplyOptions,
  type ApplyResult,
  type ConfigDocuments,
  type DocumentRules,
  type Documents,
} from './documents.js';
import type { StorageGuard } from './faults.js';
import type { NewEvent } from './history.js';
import * as schema from './schema.js';

export type SqliteDocumentsOptions = {
  rules: DocumentRules;
  guard: StorageGuard;
  now: () => number;
  /** Writes an events row inside the current transaction. */
  recordEvent: (event: NewEvent) => unknown;
};

const VERSION_KEY = 'config_version';
const { zoneSettings, regions } = schema;

// The tables read back, and the version counter, for apply and deleteRegion.
type Context = SqliteDocumentsOptions & {
  db: Db;
  readZone(): ZoneDoc | undefined;
  readRegions(): RegionDoc[];
  version(): number;
  bumpVersion(): number;
};

/** The configuration documents over `db`; every write validates the whole configuration it would leave. */
export function createSqliteDocuments(db: Db, opts: SqliteDocumentsOptions): ConfigDocuments {
  const { rules } = opts;

  // What is stored was valid when written; parse again so a schema change is caught here, not in DNS.
  const readZone = (): ZoneDoc | undefined => {
    const row = db.select().from(zoneSettings).where(eq(zoneSettings.id, 1)).get();
    return row && rules.parseZone(JSON.parse(row.doc), `database: ${ZONE_SUBJECT}`);
  };
  const readRegions = (): RegionDoc[] =>
    db
      .select()
      .from(regions)
      .orderBy(regions.id)
      .all()
      .map((row) => rules.parseRegion(JSON.parse(row.doc), `database: ${regionSubject(row.id)}`));

  const { get: version, bump } = metaCounter(db, VERSION_KEY);
  const c: Context = { ...opts, db, readZone, readRegions, version, bumpVersion: () => bump() };

  return {
    getConfig() {
      const zone = readZone();
      return zone && { zone, regions: readRegions() };
    },
    isEmpty() {
      return !db.select({ id: zoneSettings.id }).from(zoneSettings).get() && !db.select({ id: regions.id }).from(regions).get();
    },
    apply: (docs, o = {}) => applyDocuments(c, docs, o),
    deleteRegion: (id, o = {}) => deleteRegion(c, id, o),
    version,
  };
}

const describe = (what: string, before: object | undefined, after: object, by?: string) =>
  `${what} ${before ? `updated (${changedFields(before, after).join(', ')})` : 'created'}${by ? ` by ${by}` : ''}`;

// The incoming documents parsed, each region at most once.
function parseIncoming(rules: DocumentRules, docs: Documents) {
  const zone = docs.zone && rules.parseZone(docs.zone, ZONE_SUBJECT);
  const incoming = docs.regions.map((r) => rules.parseRegion(r, regionSubject(typeof r?.id === 'string' ? r.id : '?')));
  const seen = new Set<string>();
  for (const r of incoming) {
    if (seen.has(r.id)) throw rules.duplicate(regionSubject(r.id), r.id);
    seen.add(r.id);
  }
  return { zone, incoming };
}

function applyDocuments(c: Context, docs: Documents, o: ApplyOptions): ApplyResult {
  const { db, now, recordEvent } = c;
  const { zone, incoming } = parseIncoming(c.rules, docs);

  return c.guard.write(() => db.transaction(() => {
    const currentZone = c.readZone();
    const current = new Map(c.readRegions().map((r) => [r.id, r]));
    const merged = new Map(current);
    for (const r of incoming) merged.set(r.id, r);
    c.rules.validate({ zone: zone ?? currentZone, regions: [...merged.values()] });

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
    return { version: changed.length > 0 ? c.bumpVersion() : c.version(), changed };
  }));
}

function deleteRegion(c: Context, id: string, o: ApplyOptions & { unlinkServices?: boolean }) {
  const { db, now, recordEvent } = c;
  return c.guard.write(() => db.transaction(() => {
    const rest = c.readRegions();
    if (!rest.some((r) => r.id === id)) return { version: c.version(), deleted: false };
    const zone = c.readZone();
    const unlinked =
      zone && o.unlinkServices && zone.services.some((s) => s.regions?.includes(id))
        ? { ...zone, services: zone.services.map((s) => (s.regions ? { ...s, regions: s.regions.filter((r) => r !== id) } : s)) }
        : undefined;
    if (zone) c.rules.validate({ zone: unlinked ?? zone, regions: rest.filter((r) => r.id !== id) });
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
    return { version: c.bumpVersion(), deleted: true };
  }));
}
