import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { guardOf, storageFault } from './faults.js';
import * as schema from './schema.js';
import type { Db } from './database.js';

/** admin: everything; viewer: every read; probe: what probe agents and balancers call; dns: the snapshots DNS nodes answer from. */
export type Role = 'admin' | 'viewer' | 'probe' | 'dns';
/** Who a request is: the role and name of the credential it came with. */
export type Principal = { role: Role; name: string; tokenId?: number };

export const ROLES: readonly Role[] = ['admin', 'viewer', 'probe', 'dns'];

/** Every token this store makes starts with it, so a leaked one is easy to recognise (and to scan for). */
export const TOKEN_PREFIX = 'arus_';

/** A stored token as `list()` shows it: never the token, never its hash. */
export type TokenInfo = {
  id: number;
  name: string;
  role: Role;
  /** Unix times in milliseconds. */
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
};

/** What `create()` returns: the only time the plaintext token exists outside its holder. */
export type CreatedToken = { id: number; name: string; role: Role; token: string };

export interface TokenStore {
  /** Makes a token; `name` defaults to `<role>-<id>`. Throws on an unknown role or a bad name. */
  create(input: { role: Role; name?: string }): CreatedToken;
  list(): TokenInfo[];
  /** True when the token was live and is now revoked; false when there is none or it already was. */
  revoke(id: number): boolean;
  /** Whose token this is; undefined for an unknown or revoked one. */
  verify(token: string): Principal | undefined;
}

/** Lower-case hex SHA-256: what the `tokens.hash` column holds. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

// Writing last_used_at on every request would turn each read into a write.
const LAST_USED_RESOLUTION_MS = 60_000;
const NAME_MAX = 100;

function sameDigest(storedHex: string, digestHex: string): boolean {
  const a = Buffer.from(storedHex, 'hex');
  const b = Buffer.from(digestHex, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

export function createTokenStore(db: Db, opts: { now?: () => number } = {}): TokenStore {
  const now = opts.now ?? Date.now;
  const { tokens } = schema;
  const guard = guardOf(db);
  // When last_used_at was last tried per token, written or not: a database that cannot take the write is not retried per request.
  const triedAt = new Map<number, number>();

  return {
    create({ role, name }) {
      if (!isRole(role)) throw new Error(`unknown role "${String(role)}": use ${ROLES.join(', ')}`);
      const trimmed = name?.trim();
      // eslint-disable-next-line no-control-regex -- finding control characters is what this pattern is for
      if (name !== undefined && (!trimmed || trimmed.length > NAME_MAX || /[\u0000-\u001f\u007f]/.test(trimmed)))
        throw new Error(`a token's name must be 1 to ${NAME_MAX} printable characters`);
      const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
      return guard.write(() => db.transaction(() => {
        const row = db
          .insert(tokens)
          .values({ name: trimmed ?? '', role, hash: hashToken(token), createdAt: now() })
          .returning({ id: tokens.id })
          .get();
        const finalName = trimmed ?? `${role}-${row.id}`;
        if (!trimmed) db.update(tokens).set({ name: finalName }).where(eq(tokens.id, row.id)).run();
        return { id: row.id, name: finalName, role, token };
      }));
    },

    list() {
      return db
        .select({ id: tokens.id, name: tokens.name, role: tokens.role, createdAt: tokens.createdAt, lastUsedAt: tokens.lastUsedAt, revokedAt: tokens.revokedAt })
        .from(tokens)
        .orderBy(tokens.id)
        .all();
    },

    revoke(id) {
      if (!Number.isSafeInteger(id)) return false;
      const row = db.select({ revokedAt: tokens.revokedAt }).from(tokens).where(eq(tokens.id, id)).get();
      if (!row || row.revokedAt !== null) return false;
      guard.write(() => db.update(tokens).set({ revokedAt: now() }).where(eq(tokens.id, id)).run());
      return true;
    },

    verify(token) {
      if (typeof token !== 'string' || token.length === 0) return undefined;
      const digest = hashToken(token);
      const row = db.select().from(tokens).where(eq(tokens.hash, digest)).get();
      // The index finds the row by hash; comparing the digests again in constant time keeps the
      // decision itself free of early exits should the lookup ever become a prefix or LIKE match.
      if (!row || !sameDigest(row.hash, digest)) return undefined;
      if (row.revokedAt !== null) return undefined;
      const t = now();
      const last = Math.max(row.lastUsedAt ?? -Infinity, triedAt.get(row.id) ?? -Infinity);
      if (!(Math.abs(t - last) < LAST_USED_RESOLUTION_MS)) {
        if (triedAt.size >= 10_000) triedAt.clear();
        triedAt.set(row.id, t);
        // Bookkeeping: a token stays valid while the database cannot record its use.
        try {
          guard.write(() => db.update(tokens).set({ lastUsedAt: t }).where(eq(tokens.id, row.id)).run());
        } catch (err) {
          if (!storageFault(err)) throw err;
        }
      }
      return { role: row.role, name: row.name, tokenId: row.id };
    },
  };
}
