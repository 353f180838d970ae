// The configuration documents in SQLite (`zone_settings`, `regions`) and the
// configuration version counter: what apply and deleteRegion write, validated
// whole first, each change recorded as a `config.*` event in the same transaction.
import { eq } from 'drizzle-orm';
import type { RegionDoc, ZoneDoc } from '../config/schema.js';
import { metaCounter } from './counter.js';
import type { Db } from './database.js';
import { parseIncoming, planApply, planDelete, type CurrentDocuments, type Plan } from './config-plan.js';
import {
  canonicalJson,
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

function applyDocuments(c: Context, docs: Documents, o: ApplyOptions): ApplyResult {
  // Parsed before the transaction: a bad document is refused without touching the file.
  parseIncoming(c.rules, docs);
  return c.guard.write(() =>
    c.db.transaction(() => {
      const plan = planApply(current(c), docs, o, c.rules, c.now());
      write(c, plan);
      return { version: plan.changed.length > 0 ? c.bumpVersion() : c.version(), changed: plan.changed };
    }),
  );
}

function deleteRegion(c: Context, id: string, o: ApplyOptions & { unlinkServices?: boolean }) {
  return c.guard.write(() =>
    c.db.transaction(() => {
      const plan = planDelete(current(c), id, o, c.rules, c.now());
      if (!plan) return { version: c.version(), deleted: false };
      write(c, plan);
      return { version: c.bumpVersion(), deleted: true };
    }),
  );
}

const current = (c: Context): CurrentDocuments => ({ zone: c.readZone(), regions: new Map(c.readRegions().map((r) => [r.id, r])) });

/** A plan's documents and events, inside the caller's transaction. */
function write(c: Context, plan: Plan): void {
  const { db } = c;
  const t = c.now();
  if (plan.zone) {
    const doc = canonicalJson(plan.zone);
    db.insert(zoneSettings).values({ id: 1, doc, createdAt: t, updatedAt: t }).onConflictDoUpdate({ target: zoneSettings.id, set: { doc, updatedAt: t } }).run();
  }
  for (const r of plan.put) {
    const doc = canonicalJson(r);
    db.insert(regions).values({ id: r.id, doc, createdAt: t, updatedAt: t }).onConflictDoUpdate({ target: regions.id, set: { doc, updatedAt: t } }).run();
  }
  for (const id of plan.remove) db.delete(regions).where(eq(regions.id, id)).run();
  for (const e of plan.events) c.recordEvent(e);
}
