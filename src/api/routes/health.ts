import { createRoute } from '@hono/zod-openapi';
import { statusOf } from '../../control/status.js';
import { endpointKey } from '../../snapshot/snapshot.js';
import type { Api, ApiDeps } from '../deps.js';
import { anyJson, errors, json } from './shared.js';

/** The live state of every region, zone and endpoint, with the evidence. */
export function healthRoutes(app: Api, deps: ApiDeps) {
  app.openapi(
    createRoute({ method: 'get', path: '/v1/health', tags: ['health'], summary: 'Live health of every region, zone and endpoint, with the evidence', middleware: [deps.auth.requireRole('viewer')] as const, responses: { 200: json(anyJson, 'regions → zones → endpoints with state, reason, votes; agents; latency'), ...errors } }),
    (c) => {
      const { snapshot } = deps.control.current();
      const tracker = deps.control.tracker();
      const status = statusOf(snapshot);
      const overrides = deps.healthStore.listOverrides();
      return c.json(
        {
          version: snapshot.version,
          regions: snapshot.regions.map((r) => ({
            id: r.id,
            name: r.name,
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
          overrides,
          agents: tracker.agents(),
          latency: deps.control.latency(),
        },
        200,
      );
    },
  );
}
