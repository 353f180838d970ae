// TSIG keys (RFC 8945) for dynamic updates: their secrets stored encrypted
// (AES-256-GCM under ARUS_TSIG_KEY; a MAC cannot be checked against a hash),
// and the `TYPE:NAME` patterns each key may change. Kept in SQLite; in the
// replicated mode made in etcd (db/etcd/tsig-keys.ts), sealed the same way,
// and read here from each replica's read model.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { guardOf } from './faults.js';
import * as schema from './schema.js';
import type { Db } from './database.js';

export const TSIG_ALGORITHM = 'hmac-sha256';
/** What names the key-encryption key, in every message that asks for it. */
export const TSIG_KEY_SOURCE = 'ARUS_TSIG_KEY (or --tsig-key-file FILE)';

/** One `TYPE:NAME` pattern: `*` (or ANY) for every type; `*` in the name matches any characters. */
export type AllowPattern = { type: string; name: string };

export type TsigKeyInfo = { name: string; algorithm: string; allow: AllowPattern[]; createdAt: number; lastUsedAt: number | null; revokedAt: number | null };
export type TsigKey = TsigKeyInfo & { secret: Buffer };

/** A mistake in a key's name, patterns or the key-encryption key: shown to the operator as it is. */
export class TsigKeyError extends Error {}

const KEY_NAME = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** The 32-octet AES key from ARUS_TSIG_KEY's text (at least 16 characters: a passphrase or a base64 key). */
export function keyEncryptionKey(text: string | undefined): Buffer {
  const t = text?.trim();
  if (!t) throw new TsigKeyError(`TSIG keys are stored encrypted: set ${TSIG_KEY_SOURCE} (at least 16 characters, e.g. openssl rand -base64 32)`);
  if (t.length < 16) throw new TsigKeyError(`${TSIG_KEY_SOURCE} must be at least 16 characters`);
  return createHash('sha256').update('arus-tsig-kek\0').update(t).digest();
}

export function sealSecret(kek: Buffer, name: string, secret: Buffer): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', kek, iv).setAAD(Buffer.from(name));
  const body = Buffer.concat([c.update(secret), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), body]).toString('base64');
}

export function openSecret(kek: Buffer, name: string, sealed: string): Buffer {
  const raw = Buffer.from(sealed, 'base64');
  try {
    const d = createDecipheriv('aes-256-gcm', kek, raw.subarray(0, 12)).setAAD(Buffer.from(name));
    d.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]);
  } catch {
    throw new TsigKeyError(`cannot decrypt TSIG key ${name}: ${TSIG_KEY_SOURCE} is not the one it was created with`);
  }
}

/** A key as it is stored (the SQLite row's fields; the replicated store's JSON document): its secret sealed. */
export type TsigKeyDoc = { name: string; algorithm: string; secret: string; allow: AllowPattern[]; createdAt: number; revokedAt: number | null };

/** A key's name as it is stored and looked up: lowercase, no final dot. */
export const canonicalName = (text: string) => text.trim().toLowerCase().replace(/\.$/, '');

/** A new key's name as it is stored (lowercase, no final dot); throws naming --name when it is no DNS name. */
export function keyName(text: string): string {
  const name = canonicalName(text);
  if (!KEY_NAME.test(name) || name.length > 253) throw new TsigKeyError(`--name "${text}" must be a DNS name (letters, digits, - and _ in dot-separated labels)`);
  return name;
}

export const exists = (name: string) => new TsigKeyError(`a TSIG key named ${name} exists (revoked keys keep their name): choose another name`);

/** A new key with a random secret (32 octets): the document to store (sealed under `kek`) and the key, whose secret is shown once. */
export function newTsigKey(kek: Buffer, input: { name: string; allow: AllowPattern[] }, createdAt: number): { doc: TsigKeyDoc; key: TsigKey } {
  const name = keyName(input.name);
  if (input.allow.length === 0) throw new TsigKeyError('a key needs at least one --allow TYPE:NAME (such as TXT:_acme-challenge.*)');
  const secret = randomBytes(32);
  const doc: TsigKeyDoc = { name, algorithm: TSIG_ALGORITHM, secret: sealSecret(kek, name, secret), allow: input.allow, createdAt, revokedAt: null };
  return { doc, key: { name, algorithm: TSIG_ALGORITHM, allow: input.allow, createdAt, lastUsedAt: null, revokedAt: null, secret } };
}

export interface TsigKeyStore {
  /** Makes a key with a new random secret (32 octets), returned this once; `allow` parsed by update/allow.ts. */
  create(input: { name: string; allow: AllowPattern[] }): TsigKey;
  list(): TsigKeyInfo[];
  /** True when the key was live and is now revoked. */
  revoke(name: string): boolean;
  /** A live key with its secret; undefined for an unknown or revoked one. */
  get(name: string): TsigKey | undefined;
  /** Records the key's last use (at most once a minute). */
  used(name: string): void;
}

export function createTsigKeyStore(db: Db, kek: Buffer, opts: { now?: () => number } = {}): TsigKeyStore {
  const now = opts.now ?? Date.now;
  const { tsigKeys } = schema;
  const guard = guardOf(db);
  const info = (r: typeof tsigKeys.$inferSelect): TsigKeyInfo => ({
    name: r.name,
    algorithm: r.algorithm,
    allow: JSON.parse(r.allow) as AllowPattern[],
    createdAt: r.createdAt,
    lastUsedAt: r.lastUsedAt,
    revokedAt: r.revokedAt,
  });
  const lastWritten = new Map<string, number>();
  return {
    create(input) {
      const name = keyName(input.name);
      if (db.select({ name: tsigKeys.name }).from(tsigKeys).where(eq(tsigKeys.name, name)).get()) throw exists(name);
      const { doc, key } = newTsigKey(kek, input, now());
      guard.write(() => db.insert(tsigKeys).values({ ...doc, allow: JSON.stringify(doc.allow) }).run());
      return key;
    },
    list: () => db.select().from(tsigKeys).orderBy(tsigKeys.name).all().map(info),
    revoke(name) {
      const row = db.select().from(tsigKeys).where(eq(tsigKeys.name, canonicalName(name))).get();
      if (!row || row.revokedAt !== null) return false;
      guard.write(() => db.update(tsigKeys).set({ revokedAt: now() }).where(eq(tsigKeys.name, row.name)).run());
      return true;
    },
    get(name) {
      const row = db.select().from(tsigKeys).where(eq(tsigKeys.name, name)).get();
      if (!row || row.revokedAt !== null) return undefined;
      return { ...info(row), secret: openSecret(kek, row.name, row.secret) };
    },
    used(name) {
      const t = now();
      if (Math.abs(t - (lastWritten.get(name) ?? -Infinity)) < 60_000) return;
      lastWritten.set(name, t);
      try {
        guard.write(() => db.update(tsigKeys).set({ lastUsedAt: t }).where(eq(tsigKeys.name, name)).run());
      } catch {
        // Bookkeeping only: a key stays usable while the database cannot record its use.
      }
    },
  };
}
