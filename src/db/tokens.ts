import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { guardOf, storageFault } from './faults.js';
import * as schema from './schema.js';
import type { Db } from './database.js';

/**
 * admin: everything; operator: every read, and drains; viewer: every read;
 * probe: what one probe agent calls; balancer: what one region's balancer
 * calls; dns: the snapshots one DNS node answers from.
 */
export type Role = 'admin' | 'operator' | 'viewer' | 'probe' | 'balancer' | 'dns';

/**
 * The one identity a machine credential may speak for: a probe agent (and its
 * region), a balancer's region, a DNS node. Control believes these, never a
 * name the client writes in a request body.
 */
export type Binding = { agent?: string; region?: string; node?: string };

/** Who a request is: the role, name and binding of the credential it came with. */
export type Principal = Binding & { role: Role; name: string; tokenId?: number; via?: 'token' | 'certificate' };

export const ROLES: readonly Role[] = ['admin', 'operator', 'viewer', 'probe', 'balancer', 'dns'];

/** Which binding each role's credential must carry, and may carry: people's carry none. */
export const BINDINGS: Readonly<Record<Role, readonly (keyof Binding)[]>> = {
  admin: [],
  operator: [],
  viewer: [],
  probe: ['agent', 'region'],
  balancer: ['region'],
  dns: ['node'],
};

const BINDING_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const article = (role: Role) => (/^[aeiou]/.test(role) ? 'an' : 'a');

/** The binding a credential of `role` must have, checked: every field it needs, none it may not have. Throws with the reason. */
export function checkBinding(role: Role, binding: Binding): Binding {
  const needed = BINDINGS[role];
  const out: Binding = {};
  for (const key of ['agent', 'region', 'node'] as const) {
    const value = binding[key];
    if (value === undefined || value === '') {
      if (needed.includes(key)) throw new Error(`${article(role)} ${role} credential names its ${key}: --${key} ID`);
      continue;
    }
    if (!needed.includes(key)) throw new Error(`${article(role)} ${role} credential has no ${key}${needed.length ? ` (it names ${needed.join(' and ')})` : ''}`);
    if (!BINDING_ID.test(value)) throw new Error(`--${key} must be 1 to 100 letters, digits, dots, dashes or underscores, starting with a letter or digit`);
    out[key] = value;
  }
  return out;
}

/** Every token this store makes starts with it, so a leaked one is easy to recognise (and to scan for). */
export const TOKEN_PREFIX = 'arus_';

/** A stored token as `list()` shows it: never the token, never its hash. */
export type TokenInfo = Binding & {
  id: number;
  name: string;
  role: Role;
  /** Unix times in milliseconds. */
  createdAt: number;
  lastUsedAt: number | null;
  revokedAt: number | null;
};

/** What `create()` returns: the only time the plaintext token exists outside its holder. */
export type CreatedToken = Binding & { id: number; name: string; role: Role; token: string };

export interface TokenStore {
  /** Makes a token; `name` defaults to `<role>-<id>`. Throws on an unknown role, a bad name, or a binding the role does not take. */
  create(input: Binding & { role: Role; name?: string }): CreatedToken;
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
    create({ role, name, ...bound }) {
      const { binding, trimmed, token } = newToken(role, name, bound);
      return guard.write(() => db.transaction(() => {
        const row = db
          .insert(tokens)
          .values({ name: trimmed ?? '', role, hash: hashToken(token), createdAt: now(), agent: binding.agent ?? null, region: binding.region ?? null, node: binding.node ?? null })
          .returning({ id: tokens.id })
          .get();
        const finalName = tokenName(role, trimmed, binding, row.id);
        if (!trimmed) db.update(tokens).set({ name: finalName }).where(eq(tokens.id, row.id)).run();
        return { id: row.id, name: finalName, role, token, ...binding };
      }));
    },

    list() {
      return db
        .select()
        .from(tokens)
        .orderBy(tokens.id)
        .all()
        .map((t) => ({ id: t.id, name: t.name, role: t.role, ...bindingOf(t), createdAt: t.createdAt, lastUsedAt: t.lastUsedAt, revokedAt: t.revokedAt }));
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
      return { role: row.role, name: row.name, tokenId: row.id, via: 'token', ...bindingOf(row) };
    },
  };
}

/** A new token for `role`: its checked binding and name, and the secret (shown once, stored as its hash). Throws with the reason. */
export function newToken(role: Role, name: string | undefined, bound: Binding): { binding: Binding; trimmed: string | undefined; token: string } {
  if (!isRole(role)) throw new Error(`unknown role "${String(role)}": use ${ROLES.join(', ')}`);
  const binding = checkBinding(role, bound);
  const trimmed = name?.trim();
  // eslint-disable-next-line no-control-regex -- finding control characters is what this pattern is for
  if (name !== undefined && (!trimmed || trimmed.length > NAME_MAX || /[\u0000-\u001f\u007f]/.test(trimmed)))
    throw new Error(`a token's name must be 1 to ${NAME_MAX} printable characters`);
  return { binding, trimmed, token: TOKEN_PREFIX + randomBytes(32).toString('base64url') };
}

/** A machine's token is named after what it speaks for: the agent, the node, the region's balancer; else by role and id. */
export function tokenName(role: Role, name: string | undefined, binding: Binding, id: number): string {
  return name ?? binding.agent ?? binding.node ?? (binding.region ? `${role}-${binding.region}` : `${role}-${id}`);
}

/** The binding a stored token carries: its non-null columns. */
function bindingOf(row: { agent: string | null; region: string | null; node: string | null }): Binding {
  const b: Binding = {};
  if (row.agent !== null) b.agent = row.agent;
  if (row.region !== null) b.region = row.region;
  if (row.node !== null) b.node = row.node;
  return b;
}
