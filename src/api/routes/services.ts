// The services: list, get, put, patch and delete one service. Services live in
// the zone's settings, so every write is an apply of the whole zone document.
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { parseZoneDoc } from '../../config/load.js';
import { serviceSchema, type ServiceDoc, type ZoneDoc } from '../../config/schema.js';
import { contentEtag } from '../../db/writes.js';
import type { Api, ApiDeps } from '../deps.js';
import { fieldsOf, problem, type Env } from '../env.js';
import { againFromNewerCopy, condition, matches, mergePatch, writeThrough } from '../write.js';
import { anyObject, readPatch, written } from './config-writes.js';
import { errors, json, writeErrors } from './shared.js';

const serviceBody = serviceSchema;
const nameParam = z.object({ name: z.string().openapi({ param: { name: 'name', in: 'path' }, example: 'api' }) });

// A PUT, a PATCH once merged, or (no `service`) a DELETE: conditional on If-Match, 201 when it creates the service.
// A service lives in the zone's settings: its ETag is the zone document's, by which a write is made conditional.
async function putService(c: Context<Env>, deps: ApiDeps, name: string, service: ServiceDoc | undefined) {
  const zone = deps.store.getConfig()!.zone;
  const before = zone.services.find((x) => x.name === name);
  const tag = before && serviceEtag(deps, zone, before);
  if (tag && !matches(c, tag)) return problem(c, 412, `service ${name} has changed: its ETag is now ${tag}`);
  const services = service ? (before ? zone.services.map((s) => (s.name === name ? service : s)) : [...zone.services, service]) : zone.services.filter((s) => s.name !== name);
  if (services.length === 0) return problem(c, 409, `${name} is the only service; a zone needs at least one`);
  const ifMatch = condition(c, { kind: 'zone' }, tag && deps.writes.etag({ kind: 'zone' }, zone));
  const status = before || !service ? 200 : 201;
  const result = await writeThrough(c, deps, { subject: `service:${name}`, before: before ?? null, after: service ?? null, status, ifMatch, fromCopy: true }, (o) =>
    deps.writes.apply({ zone: parseZoneDoc({ ...zone, services }, 'zone-settings'), regions: [] }, { actor: c.get('principal').name, ...o }),
  );
  return c.json(result, status as 200);
}

/** A service's ETag: its own content's in the embedded mode; the zone document's revision when replicated. */
const serviceEtag = (deps: ApiDeps, zone: ZoneDoc, s: ServiceDoc) => deps.writes.etag({ kind: 'zone' }, zone) === contentEtag(zone) ? contentEtag(s) : deps.writes.etag({ kind: 'zone' }, zone);

export function serviceRoutes(app: Api, deps: ApiDeps) {
  const { store, auth } = deps;
  const read = auth.requireRole('viewer');
  const write = auth.requireRole('admin');
  const config = () => store.getConfig()!;

  app.openapi(
    createRoute({ method: 'get', path: '/v1/services', tags: ['services'], summary: 'List services', middleware: [read] as const, responses: { 200: json(z.object({ services: z.array(serviceBody) }), 'every service'), ...errors } }),
    (c) => c.json({ services: config().zone.services }, 200),
  );

  app.openapi(
    createRoute({ method: 'get', path: '/v1/services/{name}', tags: ['services'], summary: 'Get a service', middleware: [read] as const, request: { params: nameParam }, responses: { 200: json(serviceBody, 'the service'), ...errors } }),
    (c) => {
      const s = config().zone.services.find((x) => x.name === c.req.valid('param').name);
      if (!s) return problem(c, 404, `no service "${c.req.valid('param').name}"`);
      c.header('ETag', serviceEtag(deps, config().zone, s));
      return c.json(s, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/v1/services/{name}',
      tags: ['services'],
      summary: 'Create or replace a service',
      middleware: [write] as const,
      request: { params: nameParam, body: { content: { 'application/json': { schema: serviceBody } }, required: true } },
      responses: { 200: json(written, 'replaced'), 201: json(written, 'created'), ...writeErrors },
    }),
    (c) => {
      const { name } = c.req.valid('param');
      const doc = c.req.valid('json');
      if (doc.name !== name) return problem(c, 400, 'invalid body', [{ path: 'body.name', message: `must be "${name}", the name in the path` }]);
      return againFromNewerCopy(() => putService(c, deps, name, doc));
    },
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/v1/services/{name}',
      tags: ['services'],
      summary: 'Change part of a service (JSON Merge Patch)',
      middleware: [write] as const,
      request: { params: nameParam, body: { content: { 'application/json': { schema: anyObject } }, required: true } },
      responses: { 200: json(written, 'changed'), ...writeErrors },
    }),
    (c) => againFromNewerCopy(async () => {
      const { name } = c.req.valid('param');
      const before = config().zone.services.find((x) => x.name === name);
      if (!before) return problem(c, 404, `no service "${name}"`);
      const patch = await readPatch(c);
      if (!patch) return problem(c, 400, 'invalid body', [{ path: 'body', message: 'must be a JSON object (a merge patch)' }]);
      const merged = mergePatch(before, patch) as Record<string, unknown>;
      if (merged.name !== name) return problem(c, 400, 'invalid body', [{ path: 'body.name', message: 'the name cannot be changed' }]);
      const parsed = serviceSchema.safeParse(merged);
      if (!parsed.success) return problem(c, 400, 'invalid service after the patch', fieldsOf(parsed.error.issues, 'body'));
      return putService(c, deps, name, parsed.data);
    }),
  );

  app.openapi(
    createRoute({ method: 'delete', path: '/v1/services/{name}', tags: ['services'], summary: 'Delete a service', middleware: [write] as const, request: { params: nameParam }, responses: { 200: json(written, 'deleted'), ...writeErrors } }),
    (c) => againFromNewerCopy(() => {
      const { name } = c.req.valid('param');
      if (!config().zone.services.some((s) => s.name === name)) return problem(c, 404, `no service "${name}"`);
      return putService(c, deps, name, undefined);
    }),
  );
}
