import { timingSafeEqual, createHash } from 'node:crypto';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import type { Control } from '../control/control.js';
import type { Store } from '../db/store.js';
import { endpointKey } from '../snapshot/snapshot.js';
import { statusOf } from '../control/status.js';

export type Role = 'admin' | 'viewer' | 'probe';

/** Who a bearer token belongs to; undefined for an unknown token. */
export type Authenticate = (token: string) => { role: Role; name: string } | undefined;

/** A fixed set of tokens (the bootstrap admin token, in-process probes), compared in constant time. */
export function staticTokens(tokens: readonly { token: string; role: Role; name: string }[]): Authenticate {
  const hashed = tokens.map((t) => ({ ...t, digest: createHash('sha256').update(t.token).digest() }));
  return (token) => {
    const digest = createHash('sha256').update(token).digest();
    const hit = hashed.find((t) => timingSafeEqual(t.digest, digest));
    return hit && { role: hit.role, name: hit.name };
  };
}

const reportSchema = z.strictObject({
  agent: z.strictObject({ id: z.string().min(1).max(100), region: z.string().min(1).max(32) }),
  targets: z.number().int().optional(),
  results: z
    .array(
      z.strictObject({
        endpoint: z.string().min(1).max(300),
        ok: z.boolean(),
        rttMs: z.number().nonnegative().optional(),
        error: z.string().max(500).optional(),
        at: z.number().int().nonnegative(),
      }),
    )
    .max(20_000),
});

type Env = { Variables: { principal: { role: Role; name: string } } };

/** The JSON error body every 4xx uses: which field, and why. */
export function problem(c: Context, status: 400 | 401 | 403 | 404 | 409 | 413, error: string, fields?: { path: string; message: string }[]) {
  return c.json({ error, ...(fields ? { fields } : {}) }, status);
}

function requireRole(...roles: Role[]): MiddlewareHandler<Env> {
  return async (c, next) => {
    const p = c.get('principal');
    if (!roles.includes(p.role) && p.role !== 'admin') return problem(c, 403, `this route needs the ${roles.join(' or ')} role; the token has ${p.role}`);
    await next();
  };
}

/** The control plane's REST API. */
export function createApp(deps: { control: Control; store: Store; authenticate: Authenticate }) {
  const { control, store, authenticate } = deps;
  const app = new Hono<Env>();

  app.get('/healthz', (c) => c.json({ ok: true }));

  app.use('/v1/*', bodyLimit({ maxSize: 4 * 1024 * 1024, onError: (c) => problem(c, 413, 'body larger than 4 MiB') }));
  app.use('/v1/*', async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    const principal = m ? authenticate(m[1]) : undefined;
    if (!principal) {
      c.header('WWW-Authenticate', 'Bearer');
      return problem(c, 401, m ? 'unknown token' : 'missing Authorization: Bearer <token>');
    }
    c.set('principal', principal);
    await next();
  });

  app.get('/v1/probes/targets', requireRole('probe'), (c) => c.json(control.targets()));

  app.post('/v1/probes/report', requireRole('probe'), async (c) => {
    const body = await c.req.json().catch(() => undefined);
    if (body === undefined) return problem(c, 400, 'body is not JSON');
    const parsed = reportSchema.safeParse(body);
    if (!parsed.success)
      return problem(c, 400, 'invalid report', parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })));
    return c.json(control.report(parsed.data.agent, parsed.data.results));
  });

  app.get('/v1/health', requireRole('viewer'), (c) => {
    const { snapshot } = control.current();
    const tracker = control.tracker();
    const status = statusOf(snapshot);
    return c.json({
      version: snapshot.version,
      regions: snapshot.regions.map((r) => ({
        id: r.id,
        status: status.regions.get(r.id)!.status,
        zones: r.zones.map((z) => ({
          id: z.id,
          status: status.regions.get(r.id)!.zones.get(z.id)!.status,
          endpoints: z.endpoints.map((e) => {
            const t = tracker.endpoint(endpointKey(r.id, z.id, e.address));
            return { address: e.address, state: e.health, reason: e.reason, transition: t?.transition ?? null, since: t?.since ?? null, votes: t?.votes ?? [] };
          }),
        })),
      })),
      agents: tracker.agents(),
      latency: control.latency(),
    });
  });

  app.get('/v1/events', requireRole('viewer'), (c) => {
    const limit = Number(c.req.query('limit') ?? 100);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return problem(c, 400, 'invalid query', [{ path: 'limit', message: 'must be an integer from 1 to 1000' }]);
    return c.json({ events: store.listEvents({ limit, kind: c.req.query('kind'), region: c.req.query('region') }) });
  });

  app.notFound((c) => problem(c, 404, `no route ${c.req.method} ${c.req.path}`));
  return app;
}
