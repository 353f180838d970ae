// The API as a whole: its OpenAPI description, authentication on every route,
// and a property test that no input makes a write route fail with a 5xx or
// change anything when rejected.
import { Validator } from '@seriousme/openapi-schema-validator';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { testApi, TOKENS } from './testing.js';

type Doc = { openapi: string; paths: Record<string, Record<string, { parameters?: { name: string; in: string; example?: unknown; schema?: { example?: unknown } }[] }>> };

const EXAMPLES: Record<string, string> = { id: 'jkt', zone: 'jkt-a', address: '127.0.1.21', name: 'api', region: 'jkt' };
const concrete = (path: string) => path.replace(/\{(\w+)\}/g, (_, p: string) => EXAMPLES[p] ?? 'x');

async function documentOf(api: ReturnType<typeof testApi>): Promise<Doc> {
  const res = await api.call('GET', '/openapi.json', { token: null });
  expect(res.status).toBe(200);
  return (await res.json()) as Doc;
}

const routesOf = (doc: Doc) => Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((method) => ({ method: method.toUpperCase(), path })));

describe('OpenAPI description', () => {
  it('validates as OpenAPI 3 and lists every route', async () => {
    const api = testApi();
    const doc = await documentOf(api);
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 1)?.slice(0, 2000)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toMatch(/^3\./);

    // Every route Hono serves under /v1 is described (and nothing more).
    const served = api.app.routes
      .filter((r) => r.path.startsWith('/v1/') && r.method !== 'ALL')
      .map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, '{$1}')}`);
    const described = routesOf(doc).map((r) => `${r.method} ${r.path}`);
    expect(new Set(described)).toEqual(new Set(served));
    for (const must of ['GET /v1/regions', 'PUT /v1/regions/{id}', 'PATCH /v1/regions/{id}', 'DELETE /v1/regions/{id}', 'GET /v1/services', 'POST /v1/regions/{id}/drain', 'GET /v1/health', 'GET /v1/events', 'GET /v1/events/stream', 'GET /v1/resolve', 'GET /v1/probes', 'POST /v1/probes/report', 'GET /v1/audit', 'GET /v1/whoami', 'GET /v1/balancers/{region}', 'POST /v1/capacity'])
      expect(described).toContain(must);
  });

  it('serves a docs page listing the routes', async () => {
    const api = testApi();
    const res = await api.call('GET', '/docs', { token: null });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toMatch(/<h1>Arus admin API/);
    expect(html).toContain('/v1/regions/{id}/zones/{zone}/drain');
  });
});

describe('authentication on every route', () => {
  it('answers 401 without a token, and 401 with an unknown one, on every /v1 route', async () => {
    const api = testApi();
    const before = api.state();
    for (const r of routesOf(await documentOf(api))) {
      for (const headers of [{}, { authorization: 'Bearer not-a-token' }, { authorization: 'Basic YWRtaW46YWRtaW4=' }] as Record<string, string>[]) {
        const res = await api.app.request(concrete(r.path), { method: r.method, headers: { ...headers, 'content-type': 'application/json' }, body: r.method === 'GET' ? undefined : '{}' });
        expect(res.status, `${r.method} ${r.path}`).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
        expect(await res.json()).toMatchObject({ error: expect.any(String) });
      }
    }
    expect(api.state()).toBe(before);
  });

  // Which routes each role may use: people by what they may change, machines only their own routes.
  type Route = { method: string; path: string };
  const isDrain = (r: Route) => r.method === 'POST' && /\/(drain|undrain|force-up)$/.test(r.path);
  const isProbe = (r: Route) => r.path.startsWith('/v1/probes/');
  const isBalancer = (r: Route) => r.path.startsWith('/v1/balancers/') || (r.method === 'POST' && r.path === '/v1/capacity');
  const isRead = (r: Route) => r.method === 'GET' && !isProbe(r) && !isBalancer(r);
  const isWhoami = (r: Route) => r.path === '/v1/whoami';
  const MAY: Record<Exclude<keyof typeof TOKENS, 'admin'>, (r: Route) => boolean> = {
    viewer: (r) => isRead(r),
    operator: (r) => isRead(r) || isDrain(r),
    probe: (r) => isProbe(r) || isWhoami(r),
    balancer: (r) => isBalancer(r) || isWhoami(r),
    dns: (r) => r.path.startsWith('/v1/snapshots/') || isWhoami(r),
  };

  it.each(Object.keys(MAY) as (keyof typeof MAY)[])('gives a %s token its routes and a 403 on every other', async (role) => {
    const api = testApi();
    const before = api.state();
    const routes = routesOf(await documentOf(api));
    let allowed = 0;
    for (const r of routes) {
      // An empty body: a route the role may use refuses it (400) rather than writing anything.
      const res = await api.call(r.method, concrete(r.path), { token: role, body: r.method === 'GET' ? undefined : {} });
      if (MAY[role](r)) {
        allowed++;
        expect(res.status, `${role} ${r.method} ${r.path}`).not.toBe(403);
        expect(res.status, `${role} ${r.method} ${r.path}`).toBeLessThan(500);
      } else {
        expect(res.status, `${role} ${r.method} ${r.path}`).toBe(403);
        expect(((await res.json()) as { error: string }).error, `${role} ${r.method} ${r.path}`).toMatch(new RegExp(`has ${role}$`));
      }
      if (res.headers.get('content-type')?.startsWith('text/event-stream')) await res.body?.cancel();
    }
    expect(allowed).toBeGreaterThan(0);
    expect(api.state()).toBe(before);
  });

  it('gives an admin token every route', async () => {
    const api = testApi();
    for (const r of routesOf(await documentOf(api))) {
      const res = await api.call(r.method, concrete(r.path), { token: 'admin', body: r.method === 'GET' ? undefined : {} });
      expect(res.status, `admin ${r.method} ${r.path}`).not.toBe(403);
      if (res.headers.get('content-type')?.startsWith('text/event-stream')) await res.body?.cancel();
    }
  });

  it('describes the 403 a machine gets for speaking for another identity, and /v1/whoami', async () => {
    type Op = { responses: Record<string, { description: string }> };
    const doc = (await documentOf(testApi())) as unknown as { paths: Record<string, Record<string, Op>> };
    expect(doc.paths['/v1/probes/report'].post.responses['403'].description).toMatch(/agent is not the one the credential names/);
    expect(doc.paths['/v1/capacity'].post.responses['403'].description).toMatch(/another region than the credential names/);
    expect(Object.keys(doc.paths['/v1/whoami'].get.responses)).toEqual(expect.arrayContaining(['200', '401']));
  });

  it('leaves /healthz and the API description open', async () => {
    const api = testApi();
    expect((await api.call('GET', '/healthz', { token: null })).status).toBe(200);
    expect((await api.call('GET', '/openapi.json', { token: null })).status).toBe(200);
  });
});

describe('write routes under random input (property)', () => {
  const writeRoutes = [
    ['PUT', '/v1/regions/{id}'],
    ['PATCH', '/v1/regions/{id}'],
    ['DELETE', '/v1/regions/{id}'],
    ['PUT', '/v1/services/{name}'],
    ['PATCH', '/v1/services/{name}'],
    ['DELETE', '/v1/services/{name}'],
    ['PUT', '/v1/zone'],
    ['POST', '/v1/regions/{id}/drain'],
    ['POST', '/v1/regions/{id}/zones/{zone}/drain'],
    ['POST', '/v1/regions/{id}/zones/{zone}/endpoints/{address}/force-up'],
    ['POST', '/v1/probes/report'],
  ] as const;

  // Bodies: random JSON, and valid documents with one field mutated.
  const api0 = testApi();
  const config0 = api0.store.getConfig()!;
  const region = config0.regions.find((r) => r.id === 'jkt')!;
  const mutate = (doc: unknown, path: (string | number)[], value: unknown): unknown => {
    if (path.length === 0) return value;
    if (doc === null || typeof doc !== 'object') return doc;
    const [head, ...rest] = path;
    const copy = (Array.isArray(doc) ? [...doc] : { ...(doc) }) as Record<string | number, unknown>;
    copy[head] = mutate(copy[head], rest, value);
    return copy;
  };
  const weird = fc.oneof(
    fc.constant(null),
    fc.constant(''),
    fc.constant(-1),
    fc.constant(1e308),
    fc.constant('999.999.1.1'),
    fc.constant('ЖЖЖ'),
    fc.constant('a'.repeat(5000)),
    fc.constant([]),
    fc.constant({}),
    fc.string(),
    fc.integer(),
    fc.boolean(),
  );
  const paths: (string | number)[][] = [['id'], ['name'], ['location', 'lat'], ['location'], ['countries', 0], ['zones'], ['zones', 0, 'id'], ['zones', 0, 'endpoints', 0, 'address'], ['zones', 1, 'endpoints', 0, 'weight'], ['zones', 0, 'endpoints', 0, 'check'], ['ttl'], ['policy'], ['services', 0, 'ttl'], ['defaultRegion'], ['nets'], ['reason'], ['results'], ['agent']];
  const body = fc.oneof(
    fc.json().map((j) => ({ raw: j })),
    fc.jsonValue().map((v) => ({ raw: JSON.stringify(v) })),
    fc.tuple(fc.constantFrom<unknown>(region, config0.zone, config0.zone.services[0], { reason: 'x' }), fc.constantFrom(...paths), weird).map(([doc, p, v]) => ({ raw: JSON.stringify(mutate(doc, p, v)) })),
    fc.string().map((s) => ({ raw: s })),
    fc.constant({ raw: undefined as string | undefined }),
  );
  const segment = fc.oneof(fc.constantFrom('jkt', 'sg', 'nope', 'jkt-a', '127.0.1.21', '..', '%00', '%2F', 'A'.repeat(300), ''), fc.string({ maxLength: 20 }).map(encodeURIComponent));
  const headers = fc.record({
    'content-type': fc.constantFrom('application/json', 'text/plain', 'application/merge-patch+json', '', 'application/json; charset=latin1'),
    'if-match': fc.constantFrom(undefined, '*', '"nope"', ''),
  });

  it('never answers 5xx, and a rejected write changes nothing', async () => {
    const api = testApi();
    let rejected = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...writeRoutes), body, segment, segment, segment, headers, async ([method, template], b, s1, s2, s3, h) => {
        const segs = [s1, s2, s3];
        let i = 0;
        const path = template.replace(/\{\w+\}/g, () => segs[i++] || 'x');
        const before = api.state();
        const hdrs: Record<string, string> = { authorization: 'Bearer admin-token' };
        for (const [k, v] of Object.entries(h)) if (v) hdrs[k] = v;
        const res = await api.app.request(path, { method, headers: hdrs, body: b.raw });
        expect(res.status, `${method} ${path} ${b.raw?.slice(0, 200)}`).toBeLessThan(500);
        if (res.status >= 400) {
          rejected++;
          expect(api.state(), `${method} ${path} changed state with ${res.status}`).toBe(before);
          const err = (await res.json().catch(() => undefined)) as { error?: string } | undefined;
          expect(typeof err?.error, `${method} ${path} ${res.status}`).toBe('string');
        }
      }),
      { numRuns: 3000, seed: 20261130 },
    );
    expect(rejected).toBeGreaterThan(2000);
  }, 120_000);
});
