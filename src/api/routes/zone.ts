// The zone's settings (apex, name servers, SOA, services, nets): get and
// replace the whole document, written through the store like `arus apply zone.yaml`.
import { createRoute } from '@hono/zod-openapi';
import { zoneSchema } from '../../config/schema.js';
import type { Api, ApiDeps } from '../deps.js';
import { problem } from '../env.js';
import { condition, matches, writeThrough } from '../write.js';
import { written } from './config-writes.js';
import { errors, json, writeErrors } from './shared.js';

const zoneBody = zoneSchema;

export function zoneRoutes(app: Api, deps: ApiDeps) {
  const { store, auth } = deps;
  const read = auth.requireRole('viewer');
  const write = auth.requireRole('admin');
  const config = () => store.getConfig()!;

  app.openapi(
    createRoute({ method: 'get', path: '/v1/zone', tags: ['zone'], summary: "The zone's settings", middleware: [read] as const, responses: { 200: json(zoneBody, 'apex, name servers, SOA, services, nets'), ...errors } }),
    (c) => {
      const zone = config().zone;
      c.header('ETag', deps.writes.etag({ kind: 'zone' }, zone));
      return c.json(zone, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/v1/zone',
      tags: ['zone'],
      summary: "Replace the zone's settings (the body is zone.yaml as JSON)",
      middleware: [write] as const,
      request: { body: { content: { 'application/json': { schema: zoneBody } }, required: true } },
      responses: { 200: json(written, 'replaced'), ...writeErrors },
    }),
    async (c) => {
      const before = config().zone;
      const tag = deps.writes.etag({ kind: 'zone' }, before);
      if (!matches(c, tag)) return problem(c, 412, `the zone's settings have changed: their ETag is now ${tag}`);
      const zone = c.req.valid('json');
      const result = await writeThrough(c, deps, { subject: 'zone-settings', before, after: zone, status: 200, ifMatch: condition(c, { kind: 'zone' }, tag) }, (o) =>
        deps.writes.apply({ zone, regions: [] }, { actor: c.get('principal').name, ...o }),
      );
      return c.json(result, 200);
    },
  );
}
