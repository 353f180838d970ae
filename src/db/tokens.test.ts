import * as crypto from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openDatabase, type Db } from './database.js';
import { BINDINGS, createTokenStore, hashToken, ROLES, TOKEN_PREFIX, type Binding, type Role, type TokenStore } from './tokens.js';

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
    store.create({ role: 'probe', name: 'probe-sg', agent: 'sg-1', region: 'sg' });
    const list = store.list();
    expect(list.map((t) => [t.id, t.name, t.role])).toEqual([
      [1, 'dash', 'viewer'],
      [2, 'probe-sg', 'probe'],
    ]);
    expect(list[0]).toEqual({ id: 1, name: 'dash', role: 'viewer', createdAt: clock, lastUsedAt: null, revokedAt: null });
    expect(list[1]).toEqual({ id: 2, name: 'probe-sg', role: 'probe', agent: 'sg-1', region: 'sg', createdAt: clock, lastUsedAt: null, revokedAt: null });
    expect(JSON.stringify(list)).not.toContain(hashToken(a.token));
    expect(JSON.stringify(list)).not.toContain(a.token);
  });

  it('verifies its tokens and nothing else', () => {
    const viewer = store.create({ role: 'viewer', name: 'dash' });
    const admin = store.create({ role: 'admin', name: 'ops' });
    expect(store.verify(viewer.token)).toEqual({ role: 'viewer', name: 'dash', tokenId: viewer.id, via: 'token' });
    expect(store.verify(admin.token)).toEqual({ role: 'admin', name: 'ops', tokenId: admin.id, via: 'token' });
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
    const made = Array.from({ length: 100 }, (_, i) => store.create({ role: 'probe', agent: `sg-${i}`, region: 'sg' }).token);
    expect(new Set(made).size).toBe(100);
    for (const t of made.slice(0, 20)) expect(store.verify(t)?.role).toBe('probe');
  });
});

describe('token bindings: a machine token speaks for one identity', () => {
  it('binds each machine role to its identity, and people to none', () => {
    expect(BINDINGS).toEqual({ admin: [], operator: [], viewer: [], probe: ['agent', 'region'], balancer: ['region'], dns: ['node'] });
    expect(store.create({ role: 'probe', agent: 'jkt-1', region: 'jkt' })).toMatchObject({ id: 1, role: 'probe', name: 'jkt-1', agent: 'jkt-1', region: 'jkt' });
    expect(store.create({ role: 'balancer', region: 'jkt' })).toMatchObject({ id: 2, role: 'balancer', name: 'balancer-jkt', region: 'jkt' });
    expect(store.create({ role: 'dns', node: 'ns1' })).toMatchObject({ id: 3, role: 'dns', name: 'ns1', node: 'ns1' });
    for (const role of ['admin', 'operator', 'viewer'] as const) {
      const t = store.create({ role });
      expect(t, role).toEqual({ id: t.id, role, name: `${role}-${t.id}`, token: t.token });
    }
    expect(rawRows().map((r) => [r.role, r.agent, r.region, r.node])).toEqual([
      ['probe', 'jkt-1', 'jkt', null],
      ['balancer', null, 'jkt', null],
      ['dns', null, null, 'ns1'],
      ['admin', null, null, null],
      ['operator', null, null, null],
      ['viewer', null, null, null],
    ]);
  });

  it.each<{ role: Role; binding: Binding; error: string }>([
    { role: 'probe', binding: {}, error: 'a probe credential names its agent: --agent ID' },
    { role: 'probe', binding: { agent: 'jkt-1' }, error: 'a probe credential names its region: --region ID' },
    { role: 'probe', binding: { region: 'jkt' }, error: 'a probe credential names its agent: --agent ID' },
    { role: 'probe', binding: { agent: '', region: 'jkt' }, error: 'a probe credential names its agent: --agent ID' },
    { role: 'probe', binding: { agent: 'jkt-1', region: 'jkt', node: 'ns1' }, error: 'a probe credential has no node (it names agent and region)' },
    { role: 'balancer', binding: {}, error: 'a balancer credential names its region: --region ID' },
    { role: 'balancer', binding: { region: 'jkt', agent: 'jkt-1' }, error: 'a balancer credential has no agent (it names region)' },
    { role: 'dns', binding: {}, error: 'a dns credential names its node: --node ID' },
    { role: 'dns', binding: { node: 'ns1', region: 'jkt' }, error: 'a dns credential has no region (it names node)' },
    { role: 'admin', binding: { agent: 'jkt-1' }, error: 'an admin credential has no agent' },
    { role: 'operator', binding: { region: 'jkt' }, error: 'an operator credential has no region' },
    { role: 'viewer', binding: { node: 'ns1' }, error: 'a viewer credential has no node' },
    { role: 'probe', binding: { agent: '../etc', region: 'jkt' }, error: '--agent must be 1 to 100 letters, digits, dots, dashes or underscores, starting with a letter or digit' },
    { role: 'balancer', binding: { region: 'j k' }, error: '--region must be 1 to 100' },
    { role: 'dns', binding: { node: 'n'.repeat(101) }, error: '--node must be 1 to 100' },
    { role: 'dns', binding: { node: '-ns1' }, error: '--node must be 1 to 100' },
  ])('refuses a $role token with $binding, saying why, and writes nothing', ({ role, binding, error }) => {
    expect(() => store.create({ role, ...binding })).toThrow(error);
    expect(rawRows()).toHaveLength(0);
  });

  it('verifies a token as its binding: the principal names the identity it speaks for', () => {
    const probe = store.create({ role: 'probe', name: 'edge', agent: 'jkt-1', region: 'jkt' });
    const balancer = store.create({ role: 'balancer', region: 'sg' });
    const dns = store.create({ role: 'dns', node: 'ns1.example' });
    const viewer = store.create({ role: 'viewer' });
    expect(store.verify(probe.token)).toEqual({ role: 'probe', name: 'edge', tokenId: probe.id, via: 'token', agent: 'jkt-1', region: 'jkt' });
    expect(store.verify(balancer.token)).toEqual({ role: 'balancer', name: 'balancer-sg', tokenId: balancer.id, via: 'token', region: 'sg' });
    expect(store.verify(dns.token)).toEqual({ role: 'dns', name: 'ns1.example', tokenId: dns.id, via: 'token', node: 'ns1.example' });
    expect(store.verify(viewer.token)).toEqual({ role: 'viewer', name: 'viewer-4', tokenId: viewer.id, via: 'token' });
  });

  it('lists every token with its binding, and people without one', () => {
    store.create({ role: 'probe', agent: 'jkt-1', region: 'jkt' });
    store.create({ role: 'balancer', region: 'jkt' });
    store.create({ role: 'dns', node: 'ns1' });
    store.create({ role: 'operator', name: 'oncall' });
    const bindings = store.list().map(({ role, name, agent, region, node }) => ({ role, name, agent, region, node }));
    expect(bindings).toEqual([
      { role: 'probe', name: 'jkt-1', agent: 'jkt-1', region: 'jkt', node: undefined },
      { role: 'balancer', name: 'balancer-jkt', agent: undefined, region: 'jkt', node: undefined },
      { role: 'dns', name: 'ns1', agent: undefined, region: undefined, node: 'ns1' },
      { role: 'operator', name: 'oncall', agent: undefined, region: undefined, node: undefined },
    ]);
    expect(Object.keys(store.list()[3])).not.toEqual(expect.arrayContaining(['agent']));
  });

  it('knows every role, the operator among them', () => {
    expect(ROLES).toEqual(['admin', 'operator', 'viewer', 'probe', 'balancer', 'dns']);
    expect(store.verify(store.create({ role: 'operator' }).token)?.role).toBe('operator');
  });
});
