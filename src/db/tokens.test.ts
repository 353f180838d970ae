import * as crypto from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openDatabase, type Db } from './database.js';
import { createTokenStore, hashToken, TOKEN_PREFIX, type TokenStore } from './tokens.js';

// Pass-through spy: proves verify() decides with the constant-time comparison.
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return { ...real, timingSafeEqual: vi.fn(real.timingSafeEqual) };
});

let db: Db;
let clock: number;
let store: TokenStore;

beforeEach(() => {
  db = openDatabase(':memory:');
  clock = 1_000_000;
  store = createTokenStore(db, { now: () => clock });
});
afterEach(() => db.$client.close());

const rawRows = () => db.$client.prepare('SELECT * FROM tokens').all() as Record<string, unknown>[];

/** The same token with its last character changed: same length, same prefix. */
const mutateLast = (token: string) => token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');

describe('token store', () => {
  it('makes a prefixed 32-byte base64url token and names it after its role by default', () => {
    const t = store.create({ role: 'viewer' });
    expect(t.token).toMatch(new RegExp(`^${TOKEN_PREFIX}[A-Za-z0-9_-]{43}$`));
    expect(Buffer.from(t.token.slice(TOKEN_PREFIX.length), 'base64url')).toHaveLength(32);
    expect(t).toMatchObject({ id: 1, role: 'viewer', name: 'viewer-1' });
    expect(store.create({ role: 'admin', name: '  ci deploy ' })).toMatchObject({ id: 2, role: 'admin', name: 'ci deploy' });
  });

  it('stores only the hash: no column of the row holds the token', () => {
    const { token } = store.create({ role: 'admin', name: 'ops' });
    const rows = rawRows();
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(token);
    expect(JSON.stringify(rows)).not.toContain(token.slice(TOKEN_PREFIX.length));
    expect(rows[0].hash).toBe(crypto.createHash('sha256').update(token).digest('hex'));
    expect(rows[0].hash).toBe(hashToken(token));
  });

  it('lists tokens without tokens or hashes', () => {
    const a = store.create({ role: 'viewer', name: 'dash' });
    store.create({ role: 'probe', name: 'probe-sg' });
    const list = store.list();
    expect(list.map((t) => [t.id, t.name, t.role])).toEqual([
      [1, 'dash', 'viewer'],
      [2, 'probe-sg', 'probe'],
    ]);
    expect(list[0]).toEqual({ id: 1, name: 'dash', role: 'viewer', createdAt: clock, lastUsedAt: null, revokedAt: null });
    expect(JSON.stringify(list)).not.toContain(hashToken(a.token));
    expect(JSON.stringify(list)).not.toContain(a.token);
  });

  it('verifies its tokens and nothing else', () => {
    const viewer = store.create({ role: 'viewer', name: 'dash' });
    const admin = store.create({ role: 'admin', name: 'ops' });
    expect(store.verify(viewer.token)).toEqual({ role: 'viewer', name: 'dash', tokenId: viewer.id });
    expect(store.verify(admin.token)).toEqual({ role: 'admin', name: 'ops', tokenId: admin.id });
    expect(store.verify('')).toBeUndefined();
    expect(store.verify('arus_')).toBeUndefined();
    expect(store.verify(viewer.token + ' ')).toBeUndefined();
    expect(store.verify(hashToken(viewer.token))).toBeUndefined();
  });

  it('refuses a wrong token of the same length, and compares digests in constant time', () => {
    const { token } = store.create({ role: 'admin' });
    const spy = vi.mocked(crypto.timingSafeEqual);
    spy.mockClear();
    expect(store.verify(token)).toBeDefined();
    expect(spy).toHaveBeenCalledTimes(1);
    const [a, b] = spy.mock.calls[0] as unknown as [Buffer, Buffer];
    expect(a).toHaveLength(32);
    expect(b).toHaveLength(32);

    const wrong = mutateLast(token);
    expect(wrong).toHaveLength(token.length);
    expect(store.verify(wrong)).toBeUndefined();
  });

  it('revokes: the token fails from then on; revoking twice or an unknown id is false', () => {
    const t = store.create({ role: 'admin', name: 'ops' });
    const other = store.create({ role: 'viewer' });
    clock += 5;
    expect(store.revoke(t.id)).toBe(true);
    expect(store.verify(t.token)).toBeUndefined();
    expect(store.verify(other.token)).toBeDefined();
    expect(store.revoke(t.id)).toBe(false);
    expect(store.revoke(999)).toBe(false);
    expect(store.revoke(Number.NaN)).toBe(false);
    expect(store.list()[0].revokedAt).toBe(clock);
  });

  it('records last use at most once a minute', () => {
    const { token } = store.create({ role: 'viewer' });
    const lastUsed = () => store.list()[0].lastUsedAt;
    expect(lastUsed()).toBeNull();
    store.verify(token);
    expect(lastUsed()).toBe(1_000_000);
    clock += 59_999;
    store.verify(token);
    expect(lastUsed()).toBe(1_000_000);
    clock += 1;
    store.verify(token);
    expect(lastUsed()).toBe(1_060_000);
    clock += 10_000;
    store.verify(mutateLast(token));
    expect(lastUsed()).toBe(1_060_000);
  });

  it('rejects unknown roles and bad names, writing nothing', () => {
    expect(() => store.create({ role: 'root' as never })).toThrow(/unknown role "root"/);
    expect(() => store.create({ role: 'admin', name: '' })).toThrow(/name/);
    expect(() => store.create({ role: 'admin', name: '   ' })).toThrow(/name/);
    expect(() => store.create({ role: 'admin', name: 'x'.repeat(101) })).toThrow(/name/);
    expect(() => store.create({ role: 'admin', name: 'a\nb' })).toThrow(/name/);
    expect(rawRows()).toHaveLength(0);
  });

  it('never makes the same token twice', () => {
    const made = Array.from({ length: 100 }, () => store.create({ role: 'probe' }).token);
    expect(new Set(made).size).toBe(100);
    for (const t of made.slice(0, 20)) expect(store.verify(t)?.role).toBe('probe');
  });
});
