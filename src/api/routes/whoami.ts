import { createRoute, z } from '@hono/zod-openapi';
import { ROLES } from '../../db/tokens.js';
import type { Api, ApiDeps } from '../deps.js';
import { errors, json } from './shared.js';

const identity = z
  .object({
    role: z.enum(ROLES),
    name: z.string(),
    via: z.enum(['token', 'certificate']),
    agent: z.string().optional(),
    region: z.string().optional(),
    node: z.string().optional(),
  })
  .openapi('Identity');

/** Who the credential says the caller is: a probe agent, balancer or DNS node starts with the identity its credential binds. */
export function whoamiRoutes(app: Api, deps: ApiDeps) {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/whoami',
      tags: ['auth'],
      summary: "The caller's identity: role, name, and the agent, region or node its credential is bound to",
      middleware: [deps.auth.requireRole(...ROLES)] as const,
      responses: { 200: json(identity, 'the principal'), ...errors },
    }),
    (c) => {
      const p = c.get('principal');
      return c.json({ role: p.role, name: p.name, via: p.via ?? 'token', agent: p.agent, region: p.region, node: p.node }, 200);
    },
  );
}
