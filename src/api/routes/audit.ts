import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import type { AuditStore } from '../../db/audit.js';
import { ROLES } from '../../db/tokens.js';
import { problem, type Env, type Role } from '../env.js';

const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const errorBody = z.object({ error: z.string(), fields: z.array(z.object({ path: z.string(), message: z.string() })).optional() });

/** Milliseconds since the epoch, or an ISO 8601 time. */
const time = (name: string) =>
  z
    .string()
    .transform((text, ctx) => {
      const t = /^\d{1,16}$/.test(text) ? Number(text) : /^\d{4}-\d\d-\d\d/.test(text) ? Date.parse(text) : Number.NaN;
      if (Number.isNaN(t)) {
        ctx.addIssue({ code: 'custom', message: 'must be milliseconds since the epoch or an ISO 8601 time' });
        return z.NEVER;
      }
      return t;
    })
    .optional()
    .openapi({ param: { name, in: 'query' }, example: '2026-01-31T00:00:00Z' });

const query = z
  .object({
    since: time('since').openapi({ description: 'only entries at or after this time' }),
    until: time('until').openapi({ description: 'only entries before this time' }),
    actor: z.string().min(1).max(200).optional().openapi({ param: { name: 'actor', in: 'query' }, description: "the token's name", example: 'bootstrap-admin' }),
    subject: z.string().min(1).max(200).optional().openapi({ param: { name: 'subject', in: 'query' }, example: 'region:sg' }),
    cursor: z.coerce.number().int().positive().optional().openapi({ param: { name: 'cursor', in: 'query' }, description: 'the previous page’s `next`' }),
    limit: z.coerce.number().int().min(1).max(1000).optional().openapi({ param: { name: 'limit', in: 'query' }, description: '1 to 1000, default 100' }),
  })
  .refine((q) => q.since === undefined || q.until === undefined || q.since < q.until, { path: ['until'], message: 'must be after since' });

const entry = z
  .object({
    id: z.number().int(),
    time: z.number().int().openapi({ description: 'ms since the epoch' }),
    actor: z.string(),
    role: z.enum([...ROLES, 'tsig']).openapi({ description: "the token's role; tsig for a dynamic update signed with a TSIG key" }),
    action: z.string().openapi({ example: 'PUT /v1/regions/sg' }),
    subject: z.string().openapi({ example: 'region:sg' }),
    before: z.unknown().openapi({ description: 'the subject before the write; null when it did not exist' }),
    after: z.unknown().openapi({ description: 'the subject after the write; null when it no longer exists' }),
    status: z.number().int(),
  })
  .openapi('AuditEntry');

const page = z.object({
  entries: z.array(entry),
  next: z.number().int().nullable().openapi({ description: 'the cursor of the next (older) page; null on the last' }),
});

/** `GET /v1/audit`: every write through the API, newest first. */
export function auditRoutes(app: OpenAPIHono<Env>, deps: { audit: Pick<AuditStore, 'list'>; requireRole(...roles: Role[]): MiddlewareHandler<Env> }) {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/audit',
      tags: ['audit'],
      summary: 'The audit log: who wrote what, when, before and after',
      security: [{ bearer: [] }],
      middleware: [deps.requireRole('viewer')] as const,
      request: { query },
      responses: {
        200: json(page, 'a page of entries, newest first'),
        400: json(errorBody, 'invalid query: the fields and the reasons'),
        401: json(errorBody, 'no valid token'),
        403: json(errorBody, 'the token lacks the role'),
      },
    }),
    (c) => {
      const { entries, next } = deps.audit.list(c.req.valid('query'));
      return c.json({ entries, next: next ?? null }, 200);
    },
    // Same shape as the app's default hook, so the route answers alike when mounted alone (tests).
    (result, c) => {
      if (!result.success)
        return problem(
          c,
          400,
          'invalid query',
          result.error.issues.map((i) => ({ path: ['query', ...i.path.map(String)].join('.'), message: i.message })),
        );
    },
  );
}
