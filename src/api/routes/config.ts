import { createRoute, z } from '@hono/zod-openapi';
import { parseZoneDoc } from '../../config/load.js';
import { regionSchema, serviceSchema, zoneSchema, type Config, type RegionDoc, type ServiceDoc } from '../../config/schema.js';
import type { Api, ApiDeps } from '../deps.js';
import { fieldsOf, problem } from '../env.js';
import { etag, matches, mergePatch, writeThrough } from '../write.js';
import { errors, json, writeErrors } from './shared.js';

const anyObject = z.record(z.string(), z.unknown()).openapi('MergePatch', { description: 'RFC 7396 JSON Merge Patch' });
const regionBody = regionSchema;
const serviceBody = serviceSchema;
const zoneBody = zoneSchema;
const idParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' }, example: 'sg' }) });
const nameParam = z.object({ name: z.string().openapi({ param: { name: 'name', in: 'path' }, example: 'api' }) });
const written = z.object({ version: z.number(), changed: z.array(z.string()) });

/** Regions that can serve a service (its list, or every region). */
const servingRegions = (config: Config, s: ServiceDoc) => (s.regions ?? config.regions.map((r) => r.id)).filter((id) => config.regions.some((r) => r.id === id));

/** Regions, services and the zone's settings: the configuration, written through the store like `arus apply`. */
export function configRoutes(app: Api, deps: ApiDeps) {
  const { store, auth } = deps;
  const read = auth.requireRole('viewer');
  const write = auth.requireRole('admin');
  const config = () => store.getConfig()!;

  // ---------------------------------------------------------------- regions
  app.openapi(
    createRoute({ method: 'get', path: '/v1/regions', tags: ['regions'], summary: 'List regions', middleware: [read] as const, responses: { 200: json(z.object({ regions: z.array(regionBody) }), 'every region document'), ...errors } }),
    (c) => c.json({ regions: config().regions }, 200),
  );

  app.openapi(
    createRoute({ method: 'get', path: '/v1/regions/{id}', tags: ['regions'], summary: 'Get a region', middleware: [read] as const, request: { params: idParam }, responses: { 200: json(regionBody, 'the region document (ETag for If-Match)'), ...errors } }),
    (c) => {
      const r = config().regions.find((x) => x.id === c.req.valid('param').id);
      if (!r) return problem(c, 404, `no region "${c.req.valid('param').id}"`);
      c.header('ETag', etag(r));
      return c.json(r, 200);
    },
  );

  const putRegion = (c: Parameters<Parameters<typeof app.openapi>[1]>[0], id: string, doc: RegionDoc) => {
    const before = config().regions.find((x) => x.id === id);
    if (before && !matches(c, before)) return problem(c, 412, `region ${id} has changed: its ETag is now ${etag(before)}`);
    if (!before && c.req.header('if-match') && c.req.header('if-match') !== '*') return problem(c, 412, `region ${id} does not exist`);
    const { result, after } = writeThrough(
      c,
      deps,
      () => ({ result: store.apply({ regions: [doc] }, { actor: c.get('principal').name }), after: config().regions.find((x) => x.id === id)! }),
      ({ after }) => ({ subject: `region:${id}`, before: before ?? null, after, status: before ? 200 : 201 }),
    );
    c.header('ETag', etag(after));
    return c.json(result, (before ? 200 : 201) as 200);
  };

  app.openapi(
    createRoute({
      method: 'put',
      path: '/v1/regions/{id}',
      tags: ['regions'],
      summary: 'Create or replace a region (the body is the region YAML document as JSON)',
      middleware: [write] as const,
      request: { params: idParam, body: { content: { 'application/json': { schema: regionBody } }, required: true } },
      responses: { 200: json(written, 'replaced'), 201: json(written, 'created'), ...writeErrors },
    }),
    (c) => {
      const { id } = c.req.valid('param');
      const doc = c.req.valid('json') as RegionDoc;
      if (doc.id !== id) return problem(c, 400, 'invalid body', [{ path: 'body.id', message: `must be "${id}", the id in the path` }]);
      return putRegion(c, id, doc);
    },
  );

  app.openapi(
    createRoute({
      method: 'patch',
      path: '/v1/regions/{id}',
      tags: ['regions'],
      summary: 'Change part of a region (JSON Merge Patch)',
      middleware: [write] as const,
      request: { params: idParam, body: { content: { 'application/json': { schema: anyObject }, 'application/merge-patch+json': { schema: anyObject } }, required: true } },
      responses: { 200: json(written, 'changed'), ...writeErrors },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const before = config().regions.find((x) => x.id === id);
      if (!before) return problem(c, 404, `no region "${id}"`);
      const patch = await readPatch(c);
      if (!patch) return problem(c, 400, 'invalid body', [{ path: 'body', message: 'must be a JSON object (a merge patch)' }]);
      const merged = mergePatch(before, patch) as Record<string, unknown>;
      if (merged.id !== id) return problem(c, 400, 'invalid body', [{ path: 'body.id', message: 'the id cannot be changed: PUT a new region and DELETE this one' }]);
      const parsed = regionSchema.safeParse(merged);
      if (!parsed.success) return problem(c, 400, 'invalid region after the patch', fieldsOf(parsed.error.issues, 'body'));
      return putRegion(c, id, parsed.data);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/regions/{id}',
      tags: ['regions'],
      summary: 'Delete a region (refused for the last region able to serve a service unless ?force=true, which also takes it out of services\' region lists)',
      middleware: [write] as const,
      request: { params: idParam, query: z.object({ force: z.enum(['true', 'false']).optional() }) },
      responses: { 200: json(z.object({ version: z.number(), deleted: z.boolean() }), 'deleted'), ...writeErrors },
    }),
    (c) => {
      const { id } = c.req.valid('param');
      const cfg = config();
      const before = cfg.regions.find((x) => x.id === id);
      if (!before) return problem(c, 404, `no region "${id}"`);
      if (!matches(c, before)) return problem(c, 412, `region ${id} has changed: its ETag is now ${etag(before)}`);
      const force = c.req.valid('query').force === 'true';
      if (!force) {
        const orphaned = cfg.zone.services.filter((s) => {
          const serving = servingRegions(cfg, s);
          return serving.length === 1 && serving[0] === id;
        });
        if (orphaned.length)
          return problem(c, 409, `region ${id} is the last region serving ${orphaned.map((s) => s.name).join(', ')}; add another region or delete with ?force=true`);
      }
      const result = writeThrough(c, deps, () => store.deleteRegion(id, { actor: c.get('principal').name, unlinkServices: force }), () => ({ subject: `region:${id}`, before, after: null, status: 200 }));
      return c.json(result, 200);
    },
  );

  // ---------------------------------------------------------------- services
  app.openapi(
    createRoute({ method: 'get', path: '/v1/services', tags: ['services'], summary: 'List services', middleware: [read] as const, responses: { 200: json(z.object({ services: z.array(serviceBody) }), 'every service'), ...errors } }),
    (c) => c.json({ services: config().zone.services }, 200),
  );

  app.openapi(
    createRoute({ method: 'get', path: '/v1/services/{name}', tags: ['services'], summary: 'Get a service', middleware: [read] as const, request: { params: nameParam }, responses: { 200: json(serviceBody, 'the service'), ...errors } }),
    (c) => {
      const s = config().zone.services.find((x) => x.name === c.req.valid('param').name);
      if (!s) return problem(c, 404, `no service "${c.req.valid('param').name}"`);
      c.header('ETag', etag(s));
      return c.json(s, 200);
    },
  );

  const putService = (c: Parameters<Parameters<typeof app.openapi>[1]>[0], name: string, service: ServiceDoc | undefined) => {
    const zone = config().zone;
    const before = zone.services.find((x) => x.name === name);
    if (before && !matches(c, before)) return problem(c, 412, `service ${name} has changed: its ETag is now ${etag(before)}`);
    const services = service ? (before ? zone.services.map((s) => (s.name === name ? service : s)) : [...zone.services, service]) : zone.services.filter((s) => s.name !== name);
    if (services.length === 0) return problem(c, 409, `${name} is the only service; a zone needs at least one`);
    const result = writeThrough(
      c,
      deps,
      () => store.apply({ zone: parseZoneDoc({ ...zone, services }, 'zone-settings'), regions: [] }, { actor: c.get('principal').name }),
      () => ({ subject: `service:${name}`, before: before ?? null, after: service ?? null, status: before || !service ? 200 : 201 }),
    );
    return c.json(result, (before || !service ? 200 : 201) as 200);
  };

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
      const doc = c.req.valid('json') as ServiceDoc;
      if (doc.name !== name) return problem(c, 400, 'invalid body', [{ path: 'body.name', message: `must be "${name}", the name in the path` }]);
      return putService(c, name, doc);
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
    async (c) => {
      const { name } = c.req.valid('param');
      const before = config().zone.services.find((x) => x.name === name);
      if (!before) return problem(c, 404, `no service "${name}"`);
      const patch = await readPatch(c);
      if (!patch) return problem(c, 400, 'invalid body', [{ path: 'body', message: 'must be a JSON object (a merge patch)' }]);
      const merged = mergePatch(before, patch) as Record<string, unknown>;
      if (merged.name !== name) return problem(c, 400, 'invalid body', [{ path: 'body.name', message: 'the name cannot be changed' }]);
      const parsed = serviceSchema.safeParse(merged);
      if (!parsed.success) return problem(c, 400, 'invalid service after the patch', fieldsOf(parsed.error.issues, 'body'));
      return putService(c, name, parsed.data);
    },
  );

  app.openapi(
    createRoute({ method: 'delete', path: '/v1/services/{name}', tags: ['services'], summary: 'Delete a service', middleware: [write] as const, request: { params: nameParam }, responses: { 200: json(written, 'deleted'), ...writeErrors } }),
    (c) => {
      const { name } = c.req.valid('param');
      if (!config().zone.services.some((s) => s.name === name)) return problem(c, 404, `no service "${name}"`);
      return putService(c, name, undefined);
    },
  );

  // ---------------------------------------------------------------- zone settings
  app.openapi(
    createRoute({ method: 'get', path: '/v1/zone', tags: ['zone'], summary: "The zone's settings", middleware: [read] as const, responses: { 200: json(zoneBody, 'apex, name servers, SOA, services, nets'), ...errors } }),
    (c) => {
      const zone = config().zone;
      c.header('ETag', etag(zone));
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
    (c) => {
      const before = config().zone;
      if (!matches(c, before)) return problem(c, 412, `the zone's settings have changed: their ETag is now ${etag(before)}`);
      const result = writeThrough(
        c,
        deps,
        () => store.apply({ zone: c.req.valid('json') as Config['zone'], regions: [] }, { actor: c.get('principal').name }),
        () => ({ subject: 'zone-settings', before, after: config().zone, status: 200 }),
      );
      return c.json(result, 200);
    },
  );

}

/** The request's merge patch: a JSON object, or undefined for anything else (no body, bad JSON, an array). */
async function readPatch(c: { req: { json(): Promise<unknown> } }): Promise<Record<string, unknown> | undefined> {
  const patch = await c.req.json().catch(() => undefined);
  return patch && typeof patch === 'object' && !Array.isArray(patch) ? (patch as Record<string, unknown>) : undefined;
}
