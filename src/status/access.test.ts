import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { createAuth } from '../api/auth.js';
import type { Env } from '../api/env.js';
import { testApi, TOKENS } from '../api/testing.js';
import { withStatusAccess } from './access.js';

const cookieOf = (res: Response) => (res.headers.get('set-cookie') ?? '').split(';')[0];

describe('the status page and its cookie (assembled API)', () => {
  it('serves the page without a token, with a strict CSP and no data in it', async () => {
    const api = testApi();
    const res = await api.call('GET', '/', { token: null });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).toMatch(/script-src 'sha256-[\w+/=]+'/);
    expect(csp).toMatch(/connect-src 'self'/);
    expect(csp).toMatch(/frame-ancestors 'none'/);
    const html = await res.text();
    expect(html).toMatch(/<h1>Arus status<\/h1>/);
    expect(html).not.toContain('127.0.1.21');
  });

  it('serves the page gzipped when asked, and the same page', async () => {
    const api = testApi();
    const plain = await (await api.call('GET', '/', { token: null })).text();
    const res = await api.call('GET', '/', { token: null, headers: { 'accept-encoding': 'gzip, br' } });
    expect(res.headers.get('content-encoding')).toBe('gzip');
    const body = Buffer.from(await res.arrayBuffer());
    const { gunzipSync } = await import('node:zlib');
    expect(gunzipSync(body).toString('utf8')).toBe(plain);
    expect(body.length).toBeLessThan(plain.length / 2);
  });

  it('turns a viewer token into an HttpOnly, SameSite=Strict cookie and sends the browser back to the bare page', async () => {
    const api = testApi();
    const res = await api.call('GET', `/?token=${TOKENS.viewer}`, { token: null });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/');
    const set = res.headers.get('set-cookie')!;
    expect(set).toMatch(/^arus_status=viewer-token; Max-Age=86400; Path=\/; HttpOnly; SameSite=Strict$/);
    const https = await api.app.request(`https://arus.example/?token=${TOKENS.viewer}`);
    expect(https.headers.get('set-cookie')).toMatch(/; Secure/);
  });

  it.each([
    { token: TOKENS.admin, status: 403, error: /takes a viewer token, and this one is admin/ },
    { token: TOKENS.probe, status: 403, error: /this one is probe/ },
    { token: 'nope', status: 401, error: /unknown or revoked token/ },
  ])('refuses to make a cookie of $token ($status), saying why on the page', async ({ token, status, error }) => {
    const api = testApi();
    const res = await api.call('GET', `/?token=${token}`, { token: null });
    expect(res.status).toBe(status);
    expect(res.headers.get('set-cookie')).toBeNull();
    const html = await res.text();
    expect(html).toMatch(error);
    expect(html).toContain('<section id="signin" aria-labelledby="h-signin">');
  });

  it('lets the cookie GET the status reads, and nothing else', async () => {
    const api = testApi();
    const cookie = cookieOf(await api.call('GET', `/?token=${TOKENS.viewer}`, { token: null }));
    const withCookie = (method: string, path: string) => api.app.request(path, { method, headers: { cookie, 'content-type': 'application/json' }, body: method === 'GET' ? undefined : '{"reason":"x"}' });
    const status = await withCookie('GET', '/v1/status');
    expect(status.status).toBe(200);
    expect(((await status.json()) as { regions: unknown[] }).regions).toHaveLength(4);
    expect((await withCookie('GET', '/v1/events')).status).toBe(200);
    const stream = await withCookie('GET', '/v1/events/stream');
    expect(stream.status).toBe(200);
    await stream.body?.cancel();

    const before = api.state();
    for (const [method, path] of [
      ['GET', '/v1/health'],
      ['GET', '/v1/regions'],
      ['GET', '/v1/audit'],
      ['GET', '/v1/capacity'],
      ['POST', '/v1/regions/jkt/drain'],
      ['PUT', '/v1/zone'],
      ['DELETE', '/v1/regions/mnl'],
      ['POST', '/v1/status'],
    ])
      expect((await withCookie(method, path)).status, `${method} ${path}`).toBeGreaterThanOrEqual(401);
    expect((await withCookie('POST', '/v1/regions/jkt/drain')).status).toBe(401);
    expect(api.state()).toBe(before);
  });

  it('prefers a bearer header to the cookie: a probe token with a viewer cookie is still a probe', async () => {
    const api = testApi();
    const cookie = cookieOf(await api.call('GET', `/?token=${TOKENS.viewer}`, { token: null }));
    const res = await api.app.request('/v1/status', { headers: { cookie, authorization: `Bearer ${TOKENS.probe}` } });
    expect(res.status).toBe(403);
  });

  it('refuses a cookie whose token is unknown, and clears it', async () => {
    const api = testApi();
    const res = await api.app.request('/v1/status', { headers: { cookie: 'arus_status=forged' } });
    expect(res.status).toBe(401);
    expect(res.headers.get('set-cookie')).toMatch(/^arus_status=; Max-Age=0; Path=\//);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const admin = await api.app.request('/v1/status', { headers: { cookie: `arus_status=${TOKENS.admin}` } });
    expect(admin.status).toBe(401);
  });

  it('signs out by clearing the cookie', async () => {
    const api = testApi();
    const res = await api.call('GET', '/?signout=1', { token: null });
    expect(res.status).toBe(303);
    expect(res.headers.get('set-cookie')).toMatch(/^arus_status=; Max-Age=0; Path=\//);
  });

  it('is closed by default: no token, no data', async () => {
    const api = testApi();
    for (const path of ['/v1/status', '/v1/events', '/v1/events/stream']) expect((await api.call('GET', path, { token: null })).status, path).toBe(401);
  });
});

describe('open mode and exchange limits', () => {
  function app(opts: { open?: boolean; peer?: string } = {}) {
    const auth = withStatusAccess(createAuth({ staticTokens: [{ token: 'v', role: 'viewer', name: 'v' }], failures: { delayMs: 0 } }), {
      open: opts.open,
      peer: () => opts.peer,
      failures: { max: 3 },
    });
    const a = new Hono<Env>();
    a.use('*', auth.middleware);
    a.get('/', (c) => {
      const t = c.req.query('token');
      if (t === undefined) return c.text('page');
      const r = auth.exchange(c, t);
      return r.ok ? c.text('ok') : c.text(r.error, r.status);
    });
    a.get('/v1/status', auth.requireRole('viewer'), (c) => c.json({ who: c.get('principal') }));
    a.get('/v1/health', auth.requireRole('viewer'), (c) => c.json({}));
    a.post('/v1/status', auth.requireRole('viewer'), (c) => c.json({}));
    return a;
  }
  const host = (h: string) => ({ headers: { host: h } });

  it('answers status reads without a token to a loopback client asking for a loopback name', async () => {
    for (const [peer, name] of [['127.0.0.1', '127.0.0.1:8080'], ['::1', '[::1]:8080'], ['::ffff:127.0.0.1', 'localhost:8080']]) {
      const res = await app({ open: true, peer }).request('/v1/status', host(name));
      expect(res.status, `${peer} ${name}`).toBe(200);
      expect(await res.json()).toEqual({ who: { role: 'viewer', name: 'status page (open on loopback)' } });
    }
  });

  it.each([
    { why: 'closed mode', open: false, peer: '127.0.0.1', host: '127.0.0.1:8080', path: '/v1/status' },
    { why: 'a client elsewhere', open: true, peer: '192.0.2.7', host: '127.0.0.1:8080', path: '/v1/status' },
    { why: 'a rebound DNS name', open: true, peer: '127.0.0.1', host: 'evil.example:8080', path: '/v1/status' },
    { why: 'no socket', open: true, peer: undefined, host: '127.0.0.1', path: '/v1/status' },
    { why: 'another read', open: true, peer: '127.0.0.1', host: '127.0.0.1:8080', path: '/v1/health' },
  ])('stays closed for $why', async ({ open, peer, host: h, path }) => {
    expect((await app({ open, peer }).request(path, host(h))).status).toBe(401);
  });

  it('never opens a write', async () => {
    expect((await app({ open: true, peer: '127.0.0.1' }).request('/v1/status', { method: 'POST', headers: { host: '127.0.0.1' } })).status).toBe(401);
  });

  it('slows guessing at the exchange: after 3 failures from an address, 429 even for a good token', async () => {
    const a = app({ peer: '192.0.2.9' });
    for (let i = 0; i < 3; i++) expect((await a.request('/?token=guess')).status).toBe(401);
    expect((await a.request('/?token=v')).status).toBe(429);
    expect((await app({ peer: '192.0.2.10' }).request('/?token=v')).status).toBe(200);
  });
});
