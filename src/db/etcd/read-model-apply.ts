// How one etcd key lands in a replica's SQLite read model: each kind of key
// to its table, as the embedded mode's stores keep it, so that every reader
// on the replica reads SQLite as it always did (read-model.ts feeds it).
import { eq } from 'drizzle-orm';
import type { IKeyValue } from 'etcd3';
import type { Db } from '../database.js';
import type { TsigKeyDoc } from '../tsig-keys.js';
import * as schema from '../schema.js';
import type { SealedDnssecKey } from './dnssec-keys.js';
import { kindOf } from './keys.js';
import type { PublishedState } from './state.js';

/** The meta keys the SQLite stores read their versions from (db/store.ts, db/health-store.ts). */
const CONFIG_VERSION = 'config_version';
const HEALTH_VERSION = 'health_version';
const STATE = 'published_state';
const STATE_REVISION = 'published_state_revision';

export function createApplier(db: Db) {
  const { zoneSettings, regions, overrides, tokens, tsigKeys, dnssecKeys, events, audit, meta } = schema;
  const setMeta = (key: string, value: string) => db.insert(meta).values({ key, value }).onConflictDoUpdate({ target: meta.key, set: { value } }).run();
  const bumpMeta = (key: string, atLeast: number) => {
    const now = Number(db.select().from(meta).where(eq(meta.key, key)).get()?.value ?? 0);
    if (atLeast > now) setMeta(key, String(atLeast));
  };

  /**
   * One key's put (value) or delete (undefined), applied inside the caller's
   * transaction. A history or audit row's id is its key's create revision
   * × 1000 + its place among the rows that transaction created (by key):
   * the same id on every replica, in the order they were written. Returns
   * the published state when the key is it (null: deleted).
   */
  function apply(kv: IKeyValue, deleted: boolean, rowId: number): { doc: PublishedState; revision: number } | null | undefined {
    const key = kv.key.toString();
    const k = kindOf(key);
    const mod = Number(kv.mod_revision);
    const text = deleted ? undefined : kv.value.toString();
    const t = Date.now();
    switch (k.kind) {
      case 'zone':
        if (text === undefined) db.delete(zoneSettings).run();
        else db.insert(zoneSettings).values({ id: 1, doc: text, createdAt: t, updatedAt: t }).onConflictDoUpdate({ target: zoneSettings.id, set: { doc: text, updatedAt: t } }).run();
        bumpMeta(CONFIG_VERSION, mod);
        return;
      case 'region':
        if (text === undefined) db.delete(regions).where(eq(regions.id, k.id)).run();
        else db.insert(regions).values({ id: k.id, doc: text, createdAt: t, updatedAt: t }).onConflictDoUpdate({ target: regions.id, set: { doc: text, updatedAt: t } }).run();
        bumpMeta(CONFIG_VERSION, mod);
        return;
      case 'config-version':
        bumpMeta(CONFIG_VERSION, mod);
        return;
      case 'override': {
        if (text === undefined) db.delete(overrides).where(eq(overrides.subject, k.subject)).run();
        else {
          const o = JSON.parse(text) as { mode: 'drain' | 'force-up'; reason: string; actor: string | null; time: number };
          const row = { subject: k.subject, mode: o.mode, reason: o.reason, actor: o.actor, time: o.time };
          db.insert(overrides).values(row).onConflictDoUpdate({ target: overrides.subject, set: row }).run();
        }
        bumpMeta(HEALTH_VERSION, mod);
        return;
      }
      case 'token': {
        if (text === undefined) {
          db.delete(tokens).where(eq(tokens.id, k.id)).run();
          return;
        }
        const d = JSON.parse(text) as { id: number; name: string; role: typeof tokens.$inferInsert.role; hash: string; agent: string | null; region: string | null; node: string | null; createdAt: number; revokedAt: number | null };
        const row = { id: d.id, name: d.name, role: d.role, hash: d.hash, agent: d.agent, region: d.region, node: d.node, createdAt: d.createdAt, revokedAt: d.revokedAt };
        // last_used_at is this replica's own bookkeeping: kept as it is.
        db.insert(tokens).values(row).onConflictDoUpdate({ target: tokens.id, set: row }).run();
        return;
      }
      case 'tsig-key': {
        if (text === undefined) {
          db.delete(tsigKeys).where(eq(tsigKeys.name, k.name)).run();
          return;
        }
        const d = JSON.parse(text) as TsigKeyDoc;
        // The secret stays sealed (under ARUS_TSIG_KEY) in the copy too; last_used_at is this replica's own.
        const row = { name: d.name, algorithm: d.algorithm, secret: d.secret, allow: JSON.stringify(d.allow), createdAt: d.createdAt, revokedAt: d.revokedAt };
        db.insert(tsigKeys).values(row).onConflictDoUpdate({ target: tsigKeys.name, set: row }).run();
        return;
      }
      case 'dnssec-key': {
        if (text === undefined) {
          db.delete(dnssecKeys).where(eq(dnssecKeys.id, k.id)).run();
          return;
        }
        // The private key stays sealed (under ARUS_TSIG_KEY) in the copy: control opens it in memory (etcd/dnssec-keys.ts).
        const { sealed, ...d } = JSON.parse(text) as SealedDnssecKey;
        const row = { ...d, privateKey: sealed };
        db.insert(dnssecKeys).values(row).onConflictDoUpdate({ target: dnssecKeys.id, set: row }).run();
        return;
      }
      case 'event': {
        // History is written once and kept: a delete (etcd's retention) leaves the replica's copy.
        if (text === undefined) return;
        const e = JSON.parse(text) as { time: number; kind: string; subject: string; oldState: string; newState: string; reason: string; region?: string | null; data?: unknown };
        db.insert(events)
          .values({ id: rowId, time: e.time, kind: e.kind, subject: e.subject, oldState: e.oldState, newState: e.newState, reason: e.reason, region: e.region ?? null, data: e.data === undefined ? null : JSON.stringify(e.data) })
          .onConflictDoNothing()
          .run();
        return;
      }
      case 'audit': {
        if (text === undefined) return;
        const a = JSON.parse(text) as { time: number; actor: string; role: string; action: string; subject: string; before: unknown; after: unknown; status: number };
        db.insert(audit)
          .values({ id: rowId, time: a.time, actor: a.actor, role: a.role, action: a.action, subject: a.subject, before: a.before == null ? null : JSON.stringify(a.before), after: a.after == null ? null : JSON.stringify(a.after), status: a.status })
          .onConflictDoNothing()
          .run();
        return;
      }
      case 'state':
        if (text === undefined) {
          db.delete(meta).where(eq(meta.key, STATE)).run();
          return null;
        }
        setMeta(STATE, text);
        setMeta(STATE_REVISION, String(mod));
        return { doc: JSON.parse(text) as PublishedState, revision: mod };
      default:
        return;
    }
  }


  return { apply, setMeta };
}
