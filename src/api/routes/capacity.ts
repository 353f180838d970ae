import { createRoute, z } from '@hono/zod-openapi';
import type { Api, ApiDeps } from '../deps.js';
import { problem } from '../env.js';
import { mismatch, refuseIdentity } from '../identity.js';
import { anyJson, errorBody, errors, json, writeErrors } from './shared.js';

const report = z
  .strictObject({
    region: z.string().min(1).max(32),
    balancer: z.string().min(1).max(100),
    instances: z.number().int().min(0).max(100_000),
    ready: z.number().int().min(0).max(100_000),
    outstanding: z.number().int().min(0),
    freeConcurrency: z.number().int().min(0),
    queueDepth: z.number().int().min(0),
    kvHeadroom: z.number().min(0).max(1).optional(),
  })
  .openapi('CapacityReport');

/** Balancers: their configuration, and their capacity reports that steer DNS away from saturated regions. */
export function capacityRoutes(app: Api, deps: ApiDeps) {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/balancers/{region}',
      tags: ['capacity'],
      summary: "A region's balancer configuration (for `arus balancer`)",
      middleware: [deps.auth.requireRole('balancer')] as const,
      request: { params: z.object({ region: z.string().min(1).max(32).openapi({ param: { name: 'region', in: 'path' }, example: 'jkt' }) }) },
      responses: { 200: json(anyJson, 'the balancer section of the region document'), ...errors },
    }),
    (c) => {
      const { region } = c.req.valid('param');
      const refused = mismatch(c.get('principal'), { region });
      if (refused) return refuseIdentity(c, deps, { subject: `region:${region}`, claim: { region }, refused });
      const doc = deps.store.getConfig()?.regions.find((r) => r.id === region);
      if (!doc) return problem(c, 404, `no region "${region}"`);
      if (!doc.balancer) return problem(c, 404, `region ${region} has no balancer section`);
      return c.json(doc.balancer, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/capacity',
      tags: ['capacity'],
      summary: 'A balancer reports its capacity',
      middleware: [deps.auth.requireRole('balancer')] as const,
      request: { body: { content: { 'application/json': { schema: report } }, required: true } },
      responses: { 200: json(z.object({ accepted: z.boolean() }), 'accepted'), ...writeErrors, 403: json(errorBody, 'the report is for another region than the credential names') },
    }),
    (c) => {
      const r = c.req.valid('json');
      const refused = mismatch(c.get('principal'), { region: r.region });
      if (refused) return refuseIdentity(c, deps, { subject: `region:${r.region}`, claim: { region: r.region }, refused });
      if (!deps.store.getConfig()?.regions.some((x) => x.id === r.region)) return problem(c, 404, `no region "${r.region}"`);
      deps.control.reportCapacity({ ...r, at: Date.now() });
      return c.json({ accepted: true }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/capacity',
      tags: ['capacity'],
      summary: "Regions' capacity: the latest balancer reports and the share each region sheds",
      middleware: [deps.auth.requireRole('viewer')] as const,
      responses: { 200: json(anyJson, '{ regions: { <id>: { shed, saturation, reason } }, reports: [...] }'), ...errors },
    }),
    (c) => c.json(deps.control.capacity(), 200),
  );
}
