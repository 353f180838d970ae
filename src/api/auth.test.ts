import { OpenAPIHono } from '@hono/zod-openapi';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openDatabase, type Db } from '../db/database.js';
import { createTokenStore, type TokenStore } from '../db/tokens.js';
import { identityOf } from '../tls/identity.js';
import { actsAs, addressKey, createAuth, createFailureLog, type AuthOptions, type PeerIdentity } from './auth.js';
import type { Env } from './env.js';

const STATIC_ADMIN = 'static-admin-secret-0123456789';
const dbs: Db[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const db of dbs.splice(0)) db.$client.close();
});

type Setup = { clock: number; delays: number[]; tokens: TokenStore; app: OpenAPIHono<Env> };

/** A tiny app behind the middleware: one route per role, and the open routes. */
function setup(opts: Partial<AuthOptions> = {}): Setup {
  const db = openDatabase(':memory:');
  dbs.push(db);
  const s = { clock: 1_000_000, delays: [] as number[] } as Setup;
  s.tokens = createTokenStore(db, { now: () => s.clock });
  const auth = createAuth({
    tokens: s.tokens,
    staticTokens: [{ token: STATIC_ADMIN, role: 'admin', name: 'bootstrap-admin' }],
    now: () => s.clock,
    address: (c) => c.req.header('x-test-addr') ?? 'unknown',
    sleep: (ms) => {
      s.delays.push(ms);
      return Promise.resolve();
    },
    ...opts,
  });
  const app = new OpenAPIHono<Env>();
  app.use('*', auth.middleware);
  for (const path of ['/healthz', '/metrics', '/openapi.json', '/docs']) app.get(path, (c) => c.text('open'));
  app.get('/v1/read', auth.requireRole('viewer'), (c) => c.json(c.get('principal')));
  app.put('/v1/write', auth.requireRole('admin'), (c) => c.json({ ok: true }));
  app.post('/v1/drain', auth.requireRole('operator'), (c) => c.json({ ok: true }));
  app.post('/v1/report', auth.requireRole('probe'), (c) => c.json({ ok: true }));
  app.post('/v1/either', auth.requireRole('viewer', 'probe'), (c) => c.json({ ok: true }));
  s.app = app;
  return s;
}

const call = (s: Setup, path: string, init: { method?: string; token?: string; auth?: string; addr?: string } = {}) => {
  const headers: Record<string, string> = {};
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`;
  if (init.auth !== undefined) headers.authorization = init.auth;
  if (init.addr !== undefined) headers['x-test-addr'] = init.addr;
  return s.app.request(path, { method: init.method ?? 'GET', headers });
};

describe('authentication', () => {
  it('401 without a token: JSON body and WWW-Authenticate: Bearer', async () => {
    const s = setup();
    for (const [path, method] of [['/v1/read', 'GET'], ['/v1/write', 'PUT'], ['/v1/report', 'POST'], ['/v1/nothing-here', 'GET']]) {
      const res = await call(s, path, { method });
      expect(res.status, path).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await res.json()).toEqual({ error: 'missing Authorization: Bearer <token>' });
    }
  });

  it('401 for an unknown, revoked or malformed token, saying which', async () => {
    const s = setup();
    const viewer = s.tokens.create({ role: 'viewer' });
    s.tokens.revoke(viewer.id);
    for (const token of ['nope', viewer.token, STATIC_ADMIN.slice(0, -1) + 'X', `${STATIC_ADMIN}x`]) {
      const res = await call(s, '/v1/read', { token });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="arus", error="invalid_token"');
      expect(await res.json()).toEqual({ error: 'unknown or revoked token' });
    }
    for (const auth of [`Basic ${STATIC_ADMIN}`, 'Bearer', 'Bearer ', `Bearer ${STATIC_ADMIN} extra`, STATIC_ADMIN]) {
      const res = await call(s, '/v1/read', { auth });
      expect(res.status, auth).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer .*error="invalid_request"/);
      expect((await res.json()).error).toMatch(/malformed Authorization header/);
    }
  });

  it('puts the principal in the context: static tokens and stored ones', async () => {
    const s = setup();
    const viewer = s.tokens.create({ role: 'viewer', name: 'dash' });
    expect(await (await call(s, '/v1/read', { token: viewer.token })).json()).toEqual({ role: 'viewer', name: 'dash', tokenId: viewer.id, via: 'token' });
    expect(await (await call(s, '/v1/read', { token: STATIC_ADMIN })).json()).toEqual({ role: 'admin', name: 'bootstrap-admin', via: 'token' });
    expect((await call(s, '/v1/read', { auth: `bearer   ${viewer.token}` })).status).toBe(200);
  });

  it('403 for the wrong role, naming the role needed; admin may do everything', async () => {
    const s = setup();
    const viewer = s.tokens.create({ role: 'viewer', name: 'dash' }).token;
    const probe = s.tokens.create({ role: 'probe', name: 'probe-sg', agent: 'sg-1', region: 'sg' }).token;
    const admin = s.tokens.create({ role: 'admin', name: 'ops' }).token;

    const write = await call(s, '/v1/write', { method: 'PUT', token: viewer });
    expect(write.status).toBe(403);
    expect(await write.json()).toEqual({ error: 'this route needs the admin role; the token "dash" has viewer' });
    const report = await call(s, '/v1/report', { method: 'POST', token: viewer });
    expect(report.status).toBe(403);
    expect((await report.json()).error).toMatch(/needs the probe role/);
    const read = await call(s, '/v1/read', { token: probe });
    expect(read.status).toBe(403);
    expect((await read.json()).error).toMatch(/needs the viewer role; the token "probe-sg" has probe/);

    expect((await call(s, '/v1/read', { token: viewer })).status).toBe(200);
    expect((await call(s, '/v1/report', { method: 'POST', token: probe })).status).toBe(200);
    expect((await call(s, '/v1/either', { method: 'POST', token: probe })).status).toBe(200);
    expect((await call(s, '/v1/either', { method: 'POST', token: viewer })).status).toBe(200);
    for (const token of [admin, STATIC_ADMIN]) {
      expect((await call(s, '/v1/read', { token })).status).toBe(200);
      expect((await call(s, '/v1/write', { method: 'PUT', token })).status).toBe(200);
      expect((await call(s, '/v1/report', { method: 'POST', token })).status).toBe(200);
    }
  });

  it('requireRole fails closed on a route outside the middleware', async () => {
    const { requireRole } = createAuth();
    const app = new OpenAPIHono<Env>();
    app.get('/x', requireRole('viewer'), (c) => c.text('ok'));
    expect((await app.request('/x')).status).toBe(401);
  });

  it('lets the open routes through without a token, and only those', async () => {
    const s = setup();
    for (const path of ['/healthz', '/openapi.json', '/docs']) expect((await call(s, path)).status, path).toBe(200);
    expect((await call(s, '/metrics')).status).toBe(401);
    expect((await call(s, '/healthz/x')).status).toBe(401);
    expect((await call(s, '/v1/healthz')).status).toBe(401);

    const open = setup({ open: { metrics: true } });
    expect((await call(open, '/metrics')).status).toBe(200);
    expect((await call(open, '/v1/read')).status).toBe(401);

    const closed = setup({ open: { health: false } });
    expect((await call(closed, '/healthz')).status).toBe(401);
    expect((await call(closed, '/healthz', { token: STATIC_ADMIN })).status).toBe(200);
  });

  it('authenticate() checks static tokens, then the store', () => {
    const db = openDatabase(':memory:');
    dbs.push(db);
    const tokens = createTokenStore(db);
    const probe = tokens.create({ role: 'probe', name: 'p', agent: 'sg-1', region: 'sg' });
    const auth = createAuth({ tokens, staticTokens: [{ token: 'a', role: 'admin', name: 'boot' }, { token: 'b', role: 'probe', name: 'local-probe', agent: 'probe-sg', region: 'sg' }] });
    expect(auth.authenticate('a')).toEqual({ role: 'admin', name: 'boot', via: 'token' });
    expect(auth.authenticate('b')).toEqual({ role: 'probe', name: 'local-probe', via: 'token', agent: 'probe-sg', region: 'sg' });
    expect(auth.authenticate(probe.token)).toEqual({ role: 'probe', name: 'p', tokenId: probe.id, via: 'token', agent: 'sg-1', region: 'sg' });
    expect(auth.authenticate('c')).toBeUndefined();
    expect(createAuth().authenticate('a')).toBeUndefined();
    expect(() => createAuth({ staticTokens: [{ token: '', role: 'admin', name: 'boot' }] })).toThrow(/empty/);
    expect(() => createAuth({ staticTokens: [{ token: 'x', role: 'root' as never, name: 'boot' }] })).toThrow(/unknown role/);
  });

  it('no random Authorization header gets in', async () => {
    const s = setup({ failures: { max: Number.MAX_SAFE_INTEGER, maxDelayMs: 0 } });
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 80 }), async (text) => {
        fc.pre(!text.includes(STATIC_ADMIN));
        let res: Response;
        try {
          res = await call(s, '/v1/read', { auth: text });
        } catch {
          return; // not a valid header value: fetch refuses it before the app
        }
        expect(res.status).toBe(401);
      }),
      { numRuns: 300 },
    );
  });
});

describe('roles and bindings', () => {
  it('lets an operator drain and read, but not write; a viewer only read', async () => {
    const s = setup();
    const operator = s.tokens.create({ role: 'operator', name: 'oncall' }).token;
    const viewer = s.tokens.create({ role: 'viewer', name: 'dash' }).token;
    const probe = s.tokens.create({ role: 'probe', agent: 'sg-1', region: 'sg' }).token;
    expect((await call(s, '/v1/drain', { method: 'POST', token: operator })).status).toBe(200);
    expect((await call(s, '/v1/read', { token: operator })).status).toBe(200);
    const write = await call(s, '/v1/write', { method: 'PUT', token: operator });
    expect(write.status).toBe(403);
    expect(await write.json()).toEqual({ error: 'this route needs the admin role; the token "oncall" has operator' });
    const drain = await call(s, '/v1/drain', { method: 'POST', token: viewer });
    expect(drain.status).toBe(403);
    expect((await drain.json()).error).toBe('this route needs the operator role; the token "dash" has viewer');
    expect((await call(s, '/v1/drain', { method: 'POST', token: probe })).status).toBe(403);
    expect((await call(s, '/v1/drain', { method: 'POST', token: STATIC_ADMIN })).status).toBe(200);
    expect((await call(s, '/v1/report', { method: 'POST', token: operator })).status).toBe(403);

    expect(actsAs('operator', 'viewer')).toBe(true);
    expect(actsAs('viewer', 'operator')).toBe(false);
    expect(actsAs('operator', 'admin')).toBe(false);
    for (const machine of ['probe', 'balancer', 'dns'] as const) {
      expect(actsAs(machine, 'viewer'), machine).toBe(false);
      expect(actsAs('admin', machine), machine).toBe(true);
    }
  });

  it('refuses a static token without the binding its role needs, or with one it may not have', () => {
    const make = (t: Record<string, string>) => () => createAuth({ staticTokens: [{ token: 'x', name: 'n', ...t } as never] });
    expect(make({ role: 'probe' })).toThrow('a probe credential names its agent: --agent ID');
    expect(make({ role: 'probe', agent: 'jkt-1' })).toThrow('a probe credential names its region: --region ID');
    expect(make({ role: 'balancer' })).toThrow('a balancer credential names its region: --region ID');
    expect(make({ role: 'dns' })).toThrow('a dns credential names its node: --node ID');
    expect(make({ role: 'viewer', agent: 'jkt-1' })).toThrow('a viewer credential has no agent');
    expect(make({ role: 'dns', node: 'dns-1', region: 'jkt' })).toThrow('a dns credential has no region (it names node)');
    const auth = createAuth({ staticTokens: [{ token: 'b', role: 'balancer', name: 'lb', region: 'jkt' }, { token: 'd', role: 'dns', name: 'ns1', node: 'dns-1' }] });
    expect(auth.authenticate('b')).toEqual({ role: 'balancer', name: 'lb', via: 'token', region: 'jkt' });
    expect(auth.authenticate('d')).toEqual({ role: 'dns', name: 'ns1', via: 'token', node: 'dns-1' });
  });
});

describe('client certificates (createAuth peer)', () => {
  /** The peer identity of each request: the certificate named in x-test-cert (a SAN URI), none without the header. */
  const fromHeader = (c: { req: { header(n: string): string | undefined } }): PeerIdentity | undefined => {
    const uri = c.req.header('x-test-cert');
    return uri === undefined ? undefined : identityOf({ subjectaltname: `URI:${uri}`, subject: {} });
  };
  const withCert = (s: Setup, path: string, cert: string, init: { method?: string; token?: string } = {}) =>
    s.app.request(path, { method: init.method ?? 'GET', headers: { 'x-test-cert': cert, ...(init.token ? { authorization: `Bearer ${init.token}` } : {}) } });

  it("makes the certificate's identity the principal, before any bearer token", async () => {
    const s = setup({ peer: fromHeader });
    const probe = 'spiffe://arus/probe/jkt/jkt-1';
    expect((await withCert(s, '/v1/report', probe, { method: 'POST' })).status).toBe(200);
    // An admin token beside a probe certificate is still a probe: the certificate wins.
    const write = await withCert(s, '/v1/write', probe, { method: 'PUT', token: STATIC_ADMIN });
    expect(write.status).toBe(403);
    expect(await write.json()).toEqual({ error: 'this route needs the admin role; the certificate "jkt-1" has probe' });
    const viewer = await withCert(s, '/v1/read', 'spiffe://arus/viewer/alice', { token: STATIC_ADMIN });
    expect(await viewer.json()).toEqual({ role: 'viewer', name: 'alice', via: 'certificate' });
    expect((await withCert(s, '/v1/write', 'spiffe://arus/admin/bob', { method: 'PUT' })).status).toBe(200);
  });

  it('refuses (403) a certificate that names no identity, with the reason, whatever token comes with it', async () => {
    const s = setup({ peer: fromHeader });
    for (const [cert, reason] of [
      ['spiffe://arus/root/x', /"root" is not a role/],
      ['spiffe://arus/probe/jkt', /a probe certificate names spiffe:\/\/<trust domain>\/probe\/<region>\/<agent>/],
      ['spiffe://evil/admin/mallory', /outside the trust domain spiffe:\/\/arus\//],
    ] as const) {
      const res = await withCert(s, '/v1/read', cert, { token: STATIC_ADMIN });
      expect(res.status, cert).toBe(403);
      const { error } = (await res.json()) as { error: string };
      expect(error).toMatch(/^client certificate refused: /);
      expect(error).toMatch(reason);
    }
    // The open routes stay open.
    expect((await withCert(s, '/healthz', 'spiffe://arus/root/x')).status).toBe(200);
  });

  it('falls back to the bearer token when the request came without a certificate', async () => {
    const s = setup({ peer: fromHeader });
    expect(await (await call(s, '/v1/read', { token: STATIC_ADMIN })).json()).toEqual({ role: 'admin', name: 'bootstrap-admin', via: 'token' });
    expect((await call(s, '/v1/read')).status).toBe(401);
    expect((await call(s, '/v1/read', { token: 'wrong' })).status).toBe(401);
  });
});

describe('slowing down repeated failures', () => {
  it('429 with Retry-After after max failures from an address, until the window passes', async () => {
    const s = setup({ failures: { max: 3, windowMs: 60_000 } });
    for (let i = 0; i < 3; i++) {
      expect((await call(s, '/v1/read', { token: 'wrong', addr: '198.51.100.7' })).status).toBe(401);
      s.clock += 10_000;
    }
    // Further guesses are refused at once...
    const blocked = await call(s, '/v1/read', { token: 'wrong2', addr: '198.51.100.7' });
    expect(blocked.status).toBe(429);
    expect(blocked.headers.get('retry-after')).toBe('30');
    expect((await blocked.json()).error).toMatch(/too many failed authentication attempts/);
    // ...but a valid token still works from there (in-process probes share 127.0.0.1 with every local tool).
    expect((await call(s, '/v1/read', { token: STATIC_ADMIN, addr: '198.51.100.7' })).status).toBe(200);
    expect((await call(s, '/v1/read', { addr: '198.51.100.7' })).status).toBe(401);
    // Other addresses are not affected.
    expect((await call(s, '/v1/read', { token: STATIC_ADMIN, addr: '198.51.100.8' })).status).toBe(200);
    expect((await call(s, '/v1/read', { token: 'wrong', addr: '198.51.100.8' })).status).toBe(401);

    s.clock += 29_999;
    expect((await call(s, '/v1/read', { token: 'wrong', addr: '198.51.100.7' })).headers.get('retry-after')).toBe('1');
    s.clock += 1; // the first failure leaves the window: a guess is a 401 again

    // The window slides: two failures are still in it, so this one blocks again, until the second leaves.
    expect((await call(s, '/v1/read', { token: 'wrong', addr: '198.51.100.7' })).status).toBe(401);
    const again = await call(s, '/v1/read', { token: 'wrong', addr: '198.51.100.7' });
    expect(again.status).toBe(429);
    expect(again.headers.get('retry-after')).toBe('10');
    s.clock += 10_000;
    expect((await call(s, '/v1/read', { token: 'wrong', addr: '198.51.100.7' })).status).toBe(401);
  });

  it('a success does not reset the count, and a missing header is not a failure', async () => {
    const s = setup({ failures: { max: 3 } });
    const addr = '203.0.113.9';
    for (let i = 0; i < 5; i++) expect((await call(s, '/v1/read', { addr })).status).toBe(401);
    await call(s, '/v1/read', { token: 'wrong', addr });
    await call(s, '/v1/read', { token: 'wrong', addr });
    expect((await call(s, '/v1/read', { token: STATIC_ADMIN, addr })).status).toBe(200);
    await call(s, '/v1/read', { token: 'wrong', addr });
    expect((await call(s, '/v1/read', { token: 'wrong', addr })).status).toBe(429);
    expect((await call(s, '/v1/read', { token: STATIC_ADMIN, addr })).status).toBe(200);
  });

  it('waits a little longer before each further 401, up to a second', async () => {
    const s = setup({ failures: { max: 100 } });
    for (let i = 0; i < 8; i++) await call(s, '/v1/read', { token: 'wrong', addr: '192.0.2.1' });
    expect(s.delays).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    await call(s, '/v1/read', { token: 'wrong', addr: '192.0.2.2' });
    expect(s.delays).toHaveLength(7);
    await call(s, '/v1/read', { token: STATIC_ADMIN, addr: '192.0.2.1' });
    expect(s.delays).toHaveLength(7);
    // Failures that left the window no longer add to the delay.
    s.clock += 60_000;
    await call(s, '/v1/read', { token: 'wrong', addr: '192.0.2.1' });
    await call(s, '/v1/read', { token: 'wrong', addr: '192.0.2.1' });
    expect(s.delays.slice(7)).toEqual([100]);
  });

  it('really sleeps by default', async () => {
    // The default sleep is a setTimeout: faked, so the test sees the delay exactly (app.request has no socket).
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const s = setup({ sleep: undefined, failures: { delayMs: 40 } });
    expect((await call(s, '/v1/read', { token: 'wrong' })).status).toBe(401); // the first failure is not delayed
    let status: number | undefined;
    const second = Promise.resolve(call(s, '/v1/read', { token: 'wrong' })).then((res) => (status = res.status));
    await vi.advanceTimersByTimeAsync(39);
    expect(status).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(status).toBe(401);
    await second;
  });

  it('counts under "unknown" when there is no socket (app.request)', async () => {
    const auth = createAuth({ staticTokens: [{ token: STATIC_ADMIN, role: 'admin', name: 'boot' }], failures: { max: 2, maxDelayMs: 0 } });
    const app = new OpenAPIHono<Env>();
    app.use('*', auth.middleware);
    app.get('/v1/x', (c) => c.text('ok'));
    const bad = { headers: { authorization: 'Bearer wrong' } };
    expect((await app.request('/v1/x', bad)).status).toBe(401);
    expect((await app.request('/v1/x', bad)).status).toBe(401);
    expect((await app.request('/v1/x', bad)).status).toBe(429);
    expect((await app.request('/v1/x', { headers: { authorization: `Bearer ${STATIC_ADMIN}` } })).status).toBe(200);
  });

  it("counts by the socket's address over real HTTP", async () => {
    const auth = createAuth({ staticTokens: [{ token: STATIC_ADMIN, role: 'admin', name: 'boot' }], failures: { max: 2, maxDelayMs: 0 }, now: () => 1_000_000 });
    const app = new OpenAPIHono<Env>();
    app.use('*', auth.middleware);
    app.get('/v1/x', (c) => c.text('ok'));
    const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
      const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
    });
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/x`;
      const bad = { headers: { authorization: 'Bearer wrong' } };
      expect((await fetch(url, bad)).status).toBe(401);
      expect((await fetch(url, bad)).status).toBe(401);
      const blocked = await fetch(url, bad);
      expect(blocked.status).toBe(429);
      expect(blocked.headers.get('retry-after')).toBe('60'); // the default minute's window, on a clock that stands still
      // Those failures were counted under 127.0.0.1, not under "unknown".
      expect((await app.request('/v1/x', bad)).status).toBe(401);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('remembers a bounded number of addresses, forgetting the one that failed longest ago', async () => {
    const s = setup({ failures: { max: 2, maxAddresses: 3, maxDelayMs: 0 } });
    await call(s, '/v1/read', { token: 'wrong', addr: '10.0.0.1' });
    await call(s, '/v1/read', { token: 'wrong', addr: '10.0.0.1' });
    expect((await call(s, '/v1/read', { token: 'wrong', addr: '10.0.0.1' })).status).toBe(429);
    for (const addr of ['10.0.0.2', '10.0.0.3']) await call(s, '/v1/read', { token: 'wrong', addr });
    expect((await call(s, '/v1/read', { token: 'wrong', addr: '10.0.0.1' })).status).toBe(429);
    await call(s, '/v1/read', { token: 'wrong', addr: '10.0.0.4' });
    expect((await call(s, '/v1/read', { token: 'wrong', addr: '10.0.0.1' })).status).toBe(401);
  });

  it('the failure log stays within its bound and drops what left the window', () => {
    let t = 0;
    const log = createFailureLog({ max: 5, windowMs: 1000, maxAddresses: 100, now: () => t });
    for (let i = 0; i < 10_000; i++) log.fail(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    expect(log.size()).toBe(100);
    for (let i = 0; i < 50; i++) log.fail('192.0.2.1');
    expect(log.size()).toBe(100);
    expect(log.blockedFor('192.0.2.1')).toBe(1000);
    t = 1000;
    expect(log.blockedFor('192.0.2.1')).toBe(0);
    log.fail('192.0.2.2');
    expect(log.size()).toBe(1);
  });

  it('keys IPv6 clients by /64 and IPv4-mapped ones by their IPv4 address', async () => {
    expect(addressKey('198.51.100.7')).toBe('198.51.100.7');
    expect(addressKey('::ffff:198.51.100.7')).toBe('198.51.100.7');
    expect(addressKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
    expect(addressKey('unknown')).toBe('unknown');

    const s = setup({ failures: { max: 2, maxDelayMs: 0 } });
    await call(s, '/v1/read', { token: 'wrong', addr: '2001:db8:1:2::1' });
    await call(s, '/v1/read', { token: 'wrong', addr: '2001:db8:1:2::2' });
    expect((await call(s, '/v1/read', { token: 'wrong', addr: '2001:db8:1:2::99' })).status).toBe(429);
    expect((await call(s, '/v1/read', { token: 'wrong', addr: '2001:db8:1:3::1' })).status).toBe(401);
  });
});
