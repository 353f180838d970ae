import { createRoute, z } from '@hono/zod-openapi';
import { checkSubject, OverrideError } from '../../control/overrides.js';
import type { Api, ApiDeps } from '../deps.js';
import type { Context } from 'hono';
import { problem, type Env } from '../env.js';
import { writeThrough } from '../write.js';
import { json, writeErrors } from './shared.js';

const reasonBody = z.strictObject({ reason: z.string().trim().min(1).max(500) }).openapi('Reason');
const done = z.object({ subject: z.string(), override: z.enum(['drain', 'force-up', 'none']), changed: z.boolean() });
const p = (name: string, example: string) => z.string().min(1).max(100).openapi({ param: { name, in: 'path' }, example });

const levels = [
  { level: 'region', path: '/v1/regions/{id}', params: z.object({ id: p('id', 'jkt') }), subject: (v: Record<string, string>) => `region:${v.id}` },
  { level: 'zone', path: '/v1/regions/{id}/zones/{zone}', params: z.object({ id: p('id', 'jkt'), zone: p('zone', 'jkt-a') }), subject: (v: Record<string, string>) => `zone:${v.id}/${v.zone}` },
  {
    level: 'endpoint',
    path: '/v1/regions/{id}/zones/{zone}/endpoints/{address}',
    params: z.object({ id: p('id', 'jkt'), zone: p('zone', 'jkt-a'), address: p('address', '203.0.113.21') }),
    subject: (v: Record<string, string>) => `endpoint:${v.id}/${v.zone}/${v.address}`,
  },
] as const;

const actions = [
  { action: 'drain', mode: 'drain', summary: 'Drain (force down): its clients move elsewhere' },
  { action: 'force-up', mode: 'force-up', summary: 'Force up, whatever the probes say' },
  { action: 'undrain', mode: 'none', summary: 'Lift a drain or force-up' },
] as const;

/** Drain, force up and undrain a region, a zone or an endpoint, with a reason; each is an event and an audit row. */
export function drainRoutes(app: Api, deps: ApiDeps) {
  for (const l of levels)
    for (const a of actions)
      app.openapi(
        createRoute({
          method: 'post',
          path: `${l.path}/${a.action}`,
          tags: ['drain'],
          summary: `${a.summary} (${l.level})`,
          middleware: [deps.auth.requireRole('operator')] as const,
          request: { params: l.params, body: { content: { 'application/json': { schema: reasonBody } }, required: a.mode !== 'none' } },
          responses: { 200: json(done, 'the override now in force'), ...writeErrors },
        }),
        // One handler for nine routes: typed by hand rather than through the route union.
        (async (c: Context<Env>) => {
          const subject = l.subject(c.req.param());
          const body = (await c.req.json().catch(() => ({}))) as { reason?: unknown };
          const reason = typeof body?.reason === 'string' && body.reason.trim() ? body.reason.trim() : 'undrained';
          const before = deps.healthStore.listOverrides().find((o) => o.subject === subject) ?? null;
          const actor = c.get('principal').name;
          try {
            checkSubject(deps.store.getConfig(), subject);
          } catch (err) {
            if (err instanceof OverrideError) return problem(c, 404, err.message);
            throw err;
          }
          const after = a.mode === 'none' ? null : { subject, mode: a.mode, reason, actor };
          const r = await writeThrough(c, deps, { subject, before, after, status: 200 }, (o) => deps.writes.setOverride({ subject, mode: a.mode, reason, actor }, o));
          const now = deps.healthStore.listOverrides().find((o) => o.subject === subject);
          return c.json({ subject, override: now?.mode ?? 'none', changed: r.changed }, 200);
        }) as never,
      );
}
