import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { ConfigError } from '../config/load.js';
import { storageFault } from '../db/faults.js';
import { StaleWrite } from '../db/writes.js';
import type { ApiDeps } from './deps.js';
import { fieldsOf, problem, type Env } from './env.js';
import { docsPage } from './docs.js';
import { capacityRoutes } from './routes/capacity.js';
import { configRoutes } from './routes/config.js';
import { drainRoutes } from './routes/drain.js';
import { eventRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { probeRoutes } from './routes/probes.js';
import { resolveRoutes } from './routes/resolve.js';
import { snapshotRoutes } from './routes/snapshots.js';
import { whoamiRoutes } from './routes/whoami.js';
import { clusterRoutes } from './routes/cluster.js';

export const MAX_BODY_BYTES = 1024 * 1024;

/** The control plane's REST API (Hono + zod-openapi). Tests call `app.request()`; `arus control` serves it. */
export function createApp(deps: ApiDeps) {
  const app = new OpenAPIHono<Env>({
    defaultHook: (result, c) => {
      if (!result.success) {
        const where = result.target === 'json' ? 'body' : result.target === 'param' ? 'path' : result.target;
        return problem(c, 400, `invalid ${where}`, fieldsOf(result.error.issues, where));
      }
    },
  });

  for (const m of deps.middleware ?? []) app.use('*', m);
  app.use('/v1/*', bodyLimit({ maxSize: MAX_BODY_BYTES, onError: (c) => problem(c, 413, `body larger than ${MAX_BODY_BYTES} bytes`) }));
  app.use('*', deps.auth.middleware);

  app.get('/healthz', (c) => c.json({ ok: true }));
  configRoutes(app, deps);
  drainRoutes(app, deps);
  healthRoutes(app, deps);
  eventRoutes(app, deps);
  resolveRoutes(app, deps);
  probeRoutes(app, deps);
  capacityRoutes(app, deps);
  snapshotRoutes(app, deps);
  whoamiRoutes(app, deps);
  clusterRoutes(app, deps);
  for (const mount of deps.mount ?? []) mount(app);

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
  const document = () =>
    app.getOpenAPIDocument({
      openapi: '3.0.3',
      info: { title: 'Arus admin API', version: deps.version ?? '0.1.0', description: 'Regions, services, drains, health, history and decisions of the Arus traffic steering service.' },
      security: [{ bearer: [] }],
    });
  app.get('/openapi.json', (c) => c.json(document()));
  app.get('/docs', (c) => c.html(docsPage(document() as unknown as Parameters<typeof docsPage>[0])));

  app.notFound((c) => problem(c, 404, `no route ${c.req.method} ${c.req.path}`));
  app.onError((err, c) => {
    if (err instanceof HTTPException && err.status < 500) {
      // Hono's own 4xx (malformed JSON, a body that is not JSON) get the same JSON error body as ours.
      const body = err.status === 415 ? `${err.message}: send the body as application/json` : err.message;
      return c.json({ error: body }, err.status);
    }
    if (err instanceof ConfigError) return problem(c, 400, 'invalid configuration', err.issues.map((i) => ({ path: i.path, message: i.message })));
    // Another write came between the request's If-Match check and its write.
    if (err instanceof StaleWrite) return problem(c, 412, err.message);
    // The disk, the file or another process's lock: the write was rolled back whole; control logs and counts these.
    const fault = storageFault(err);
    if (fault) {
      if (fault.retryAfterS) c.header('Retry-After', String(fault.retryAfterS));
      return problem(c, 503, fault.message);
    }
    deps.log.error({ err, path: c.req.path }, 'API request failed');
    return c.json({ error: 'internal error' }, 500);
  });
  return app;
}

