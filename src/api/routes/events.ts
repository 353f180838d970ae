import { createRoute, z } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import type { Api, ApiDeps } from '../deps.js';
import { anyJson, errors, json } from './shared.js';

/** Milliseconds since the epoch, or an ISO time. */
const time = z
  .string()
  .max(40)
  .transform((s, ctx) => {
    const n = /^\d+$/.test(s) ? Number(s) : Date.parse(s);
    if (Number.isNaN(n)) {
      ctx.addIssue({ code: 'custom', message: 'must be milliseconds since the epoch or an ISO time' });
      return z.NEVER;
    }
    return n;
  })
  .openapi({ type: 'string', example: '2026-11-30T04:00:00Z' });

const filters = {
  since: time.optional(),
  until: time.optional(),
  kind: z.string().max(40).optional().openapi({ example: 'failover' }),
  region: z.string().max(32).optional().openapi({ example: 'jkt' }),
};

const event = z.object({ id: z.number(), time: z.number(), kind: z.string(), subject: z.string(), oldState: z.string(), newState: z.string(), reason: z.string(), region: z.string().nullable(), data: z.unknown() }).openapi('Event');

/** The history (every state change), paged by cursor, and live as server-sent events. */
export function eventRoutes(app: Api, deps: ApiDeps) {
  const read = deps.auth.requireRole('viewer');

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/events',
      tags: ['events'],
      summary: 'History, newest first; pass `next` back as `cursor` for the next page',
      middleware: [read] as const,
      request: {
        query: z.object({
          ...filters,
          limit: z.coerce.number().int().min(1).max(1000).default(100),
          cursor: z.coerce.number().int().min(1).optional().openapi({ description: 'the `next` of the previous page' }),
        }),
      },
      responses: { 200: json(z.object({ events: z.array(event), next: z.number().nullable() }), 'a page of events'), ...errors },
    }),
    (c) => {
      const q = c.req.valid('query');
      const events = deps.store.listEvents({ limit: q.limit + 1, before: q.cursor, since: q.since, until: q.until, kind: q.kind, region: q.region });
      const page = events.slice(0, q.limit);
      return c.json({ events: page, next: events.length > q.limit ? page[page.length - 1].id : null }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/events/stream',
      tags: ['events'],
      summary: 'New events as server-sent events (`event: <kind>`, `id: <id>`; resumes after Last-Event-ID)',
      middleware: [read] as const,
      request: { query: z.object({ kind: filters.kind, region: filters.region }) },
      responses: { 200: { description: 'text/event-stream of Event objects', content: { 'text/event-stream': { schema: anyJson } } }, ...errors },
    }),
    (c) => {
      const q = c.req.valid('query');
      const lastId = Number(c.req.header('last-event-id'));
      return streamSSE(c, async (stream) => {
        // Events are written by control, the CLI and other processes alike: follow the table itself.
        let after = Number.isInteger(lastId) && lastId > 0 ? lastId : (deps.store.listEvents({ limit: 1 })[0]?.id ?? 0);
        let open = true;
        stream.onAbort(() => {
          open = false;
        });
        await stream.writeSSE({ event: 'ready', data: JSON.stringify({ after }) });
        let beat = 0;
        while (open) {
          const fresh = deps.store.listEvents({ limit: 1000, after, kind: q.kind, region: q.region });
          for (const e of fresh) await stream.writeSSE({ id: String(e.id), event: e.kind, data: JSON.stringify(e) });
          if (fresh.length) after = fresh[fresh.length - 1].id;
          if (++beat % 30 === 0) await stream.writeSSE({ event: 'ping', data: '{}' });
          await stream.sleep(250);
        }
      });
    },
  );
}
