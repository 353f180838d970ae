import { createRoute, z } from '@hono/zod-openapi';
import { explainQuery, ExplainError } from '../../explain.js';
import type { Api, ApiDeps } from '../deps.js';
import { problem } from '../env.js';
import { anyJson, errors, json } from './shared.js';

const query = z.object({
  name: z.string().min(1).max(253).openapi({ example: 'api.gslb.example.com' }),
  client: z.string().min(1).max(64).openapi({ example: '192.0.2.1', description: 'the address the query comes from' }),
  ecs: z.string().max(64).optional().openapi({ example: '36.66.0.0/24', description: 'an EDNS Client Subnet' }),
  type: z.enum(['A', 'AAAA']).default('A'),
});

/** The decision DNS would give, and its trace: the same steer() on the same snapshot. */
export function resolveRoutes(app: Api, deps: ApiDeps) {
  app.openapi(
    createRoute({ method: 'get', path: '/v1/resolve', tags: ['resolve'], summary: 'Explain the answer DNS gives a client', middleware: [deps.auth.requireRole('viewer')] as const, request: { query }, responses: { 200: json(anyJson, 'outcome, client facts, decision and trace'), ...errors } }),
    (c) => {
      const q = c.req.valid('query');
      try {
        return c.json(explainQuery(deps.control.current(), q), 200);
      } catch (err) {
        if (err instanceof ExplainError) return problem(c, 400, 'invalid query', [{ path: /ecs/.test(err.message) ? 'query.ecs' : 'query.client', message: err.message }]);
        throw err;
      }
    },
  );
}
