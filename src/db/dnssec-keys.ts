// DNSSEC keys in SQLite: the zone's KSK and ZSKs as documents (the DNSKEY
// RDATA and the private key, PKCS #8 PEM), made by src/dnssec/keys.ts above
// this floor. `list` never returns a private key: it is what every reader
// but control's signer gets. Storing a private key makes the database file
// (and its WAL and shared-memory files) readable by its owner only (0600).
import { chmodSync, existsSync } from 'node:fs';
import { eq } from 'drizzle-orm';
import type { Db } from './database.js';
import { guardOf } from './faults.js';
import * as schema from './schema.js';

export type DnssecKeyRole = 'ksk' | 'zsk';
/**
 * published: in DNSKEY, signing nothing yet (a successor, RFC 7583); active:
 * signing; retired: signing no more (a ZSK) or no longer in the parent's DS
 * (a KSK), still in DNSKEY while caches may hold what it signed; removed:
 * gone from DNSKEY, kept as a record.
 */
export type DnssecKeyState = 'published' | 'active' | 'retired' | 'removed';
/** A key as listed: everything but the private key. */
export type DnssecKeyInfo = { id: string; zone: string; role: DnssecKeyRole; algorithm: number; tag: number; dnskey: string; state: DnssecKeyState; createdAt: number; activatedAt: number | null; retiredAt: number | null };
/** A key as stored. */
export type DnssecKeyDoc = DnssecKeyInfo & { privateKey: string };

/** A mistake the operator can fix (a zone already signed, no keys yet): shown as it is. */
export class DnssecKeyError extends Error {}

export interface DnssecKeyStore {
  /** Stores a zone's first keys; refused when it has live (not retired) keys already. */
  init(keys: readonly Omit<DnssecKeyDoc, 'id'>[]): DnssecKeyInfo[];
  /** Every key of `zone` (every zone when omitted), oldest first; never a private key. */
  list(zone?: string): DnssecKeyInfo[];
  /** The live (not removed) keys of `zone` with their private keys: for control's signer only. */
  live(zone: string): DnssecKeyDoc[];
  /** Adds a key to a zone that has keys (a rollover's successor). */
  add(key: Omit<DnssecKeyDoc, 'id'>): DnssecKeyInfo;
  /** Moves a key on: its state, and when it became active or retired. */
  update(id: string, change: Partial<Pick<DnssecKeyDoc, 'state' | 'activatedAt' | 'retiredAt'>>): void;
}

export const zoneKey = (zone: string) => zone.trim().toLowerCase().replace(/\.$/, '');

/** `<role>-<tag>`, with a suffix when the id is taken (a tag repeats): how every store names a key. */
export function keyId(k: { role: string; tag: number }, taken: ReadonlySet<string>): string {
  let id = `${k.role}-${k.tag}`;
  for (let n = 2; taken.has(id); n++) id = `${k.role}-${k.tag}-${n}`;
  return id;
}

/** The zone of a first set of keys, checked as every store's `init` checks it: one zone, none of its keys live yet. */
export function initZone(keys: readonly { zone: string }[], existing: (zone: string) => readonly { id: string; state: DnssecKeyState }[]): string {
  const zones = new Set(keys.map((k) => zoneKey(k.zone)));
  if (keys.length === 0 || zones.size !== 1) throw new DnssecKeyError("init stores one zone's keys: at least one, all of the same zone");
  const [zone] = zones;
  const live = existing(zone).filter((r) => r.state !== 'removed');
  if (live.length) throw new DnssecKeyError(`${zone} has DNSSEC keys already (${live.map((r) => r.id).join(', ')}): see arus dnssec status (keys are rolled over, not made again)`);
  return zone;
}

/** The database file and its -wal and -shm companions, mode 0600 (SQLite makes new companions with the file's mode). */
function ownerOnly(file: string): void {
  if (!file || file === ':memory:') return;
  for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
}

export function createDnssecKeyStore(db: Db): DnssecKeyStore {
  const { dnssecKeys } = schema;
  const guard = guardOf(db);
  const info = ({ privateKey: _p, ...rest }: typeof dnssecKeys.$inferSelect): DnssecKeyInfo => rest;
  const rows = (zone?: string) => (zone === undefined ? db.select().from(dnssecKeys) : db.select().from(dnssecKeys).where(eq(dnssecKeys.zone, zoneKey(zone)))).orderBy(dnssecKeys.createdAt, dnssecKeys.id).all();
  return {
    init(keys) {
      const zone = initZone(keys, rows);
      const docs = withIds(keys.map((k) => ({ ...k, zone })));
      guard.write(() => db.transaction((tx) => docs.forEach((d) => tx.insert(dnssecKeys).values(d).run())));
      ownerOnly(db.$client.name);
      return docs.map(info);
    },
    list: (zone) => rows(zone).map(info),
    live: (zone) => rows(zone).filter((r) => r.state !== 'removed'),
    add(key) {
      const [doc] = withIds([{ ...key, zone: zoneKey(key.zone) }]);
      guard.write(() => db.insert(dnssecKeys).values(doc).run());
      ownerOnly(db.$client.name);
      return info(doc);
    },
    update(id, change) {
      const done = guard.write(() => db.update(dnssecKeys).set(change).where(eq(dnssecKeys.id, id)).run());
      if (done.changes !== 1) throw new DnssecKeyError(`no DNSSEC key ${id}`);
    },
  };

  function withIds<T extends Omit<DnssecKeyDoc, 'id'>>(keys: T[]): (T & { id: string })[] {
    const taken = new Set(db.select({ id: dnssecKeys.id }).from(dnssecKeys).all().map((r) => r.id));
    return keys.map((k) => {
      const id = keyId(k, taken);
      taken.add(id);
      return { ...k, id };
    });
  }
}
