// The regions: list, get, put, patch and delete one region's document,
// written through the store like `arus apply regions/<id>.yaml`.
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { regionSchema, type Config, type RegionDoc, type ServiceDoc } from '../../config/schema.js';
import type { Api, ApiDeps } from '../deps.js';
import { fieldsOf, problem, type Env } from '../env.js';
import { againFromNewerCopy, condition, matches, mergePatch, writeThrough } from '../write.js';
import { anyObject, readPatch, written } from './config-writes.js';
import { errors, json, writeErrors } from './shared.js';

const regionBody = regionSchema;
const idParam = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' }, example: 'sg' }) });

/** Regions that can serve a service (its list, or every region). */
const servingRegions = (config: Config, s: ServiceDoc) => (s.regions ?? config.regions.map((r) => r.id)).filter((id) => config.regions.some((r) => r.id === id));

/** Services that only region `id` can serve: deleting it would leave them nowhere. */
const orphanedBy = (config: Config, id: string) =>
  config.zone.services.filter((s) => {
    const serving = servingRegions(config, s);
    return serving.length === 1 && serving[0] === id;
  });

// A PUT, or a PATCH once merged: conditional on If-Match, 201 when it creates the region.
async function putRegion(c: Context<Env>, deps: ApiDeps, id: string, doc: RegionDoc, fromCopy = false) {
  const config = () => deps.store.getConfig()!;
  const ref = { kind: 'region', id } as const;
  const before = config().regions.find((x) => x.id === id);
  const tag = before && deps.writes.etag(ref, before);
  if (tag && !matches(c, tag)) return problem(c, 412, `region ${id} has changed: its ETag is now ${tag}`);
  if (!before && c.req.header('if-match') && c.req.header('if-match') !== '*') return problem(c, 412, `region ${id} does not exist`);
  const result = await writeThrough(c, deps, { subject: `region:${id}`, before: before ?? null, after: doc, status: before ? 200 : 201, ifMatch: condition(c, ref, tag), fromCopy }, (o) =>
    deps.writes.apply({ regions: [doc] }, { actor: c.get('principal').name, ...o }),
  );
  const after = config().regions.find((x) => x.id === id);
  if (after) c.header('ETag', deps.writes.etag(ref, after));
  return c.json(result, (before ? 200 : 201) as 200);
}

// Refused for the last region able to serve a service unless `force`, which also unlinks it from the services.
async function deleteRegion(c: Context<Env>, deps: ApiDeps, id: string, force: boolean) {
  const cfg = deps.store.getConfig()!;
  const ref = { kind: 'region', id } as const;
  const before = cfg.regions.find((x) => x.id === id);
  if (!before) return problem(c, 404, `no region "${id}"`);
  const tag = deps.writes.etag(ref, before);
  if (!matches(c, tag)) return problem(c, 412, `region ${id} has changed: its ETag is now ${tag}`);
  if (!force) {
    const orphaned = orphanedBy(cfg, id);
    if (orphaned.length)
      return problem(c, 409, `region ${id} is the last region serving ${orphaned.map((s) => s.name).join(', ')}; add another region or delete with ?force=true`);
  }
  const result = await writeThrough(c, deps, { subject: `region:${id}`, before, after: null, status: 200, ifMatch: condition(c, ref, tag) }, (o) =>
    deps.writes.deleteRegion(id, { actor: c.get('principal').name, unlinkServices: force, ...o }),
  );
  return c.json(result, 200);
}

export function regionRoutes(app: Api, deps: ApiDeps) {
  const { store, auth } = deps;
  const read = auth.requireRole('viewer');
  const write = auth.requireRole('admin');
  const config = () => store.getConfig()!;

  app.openapi(
    createRoute({ method: 'get', path: '/v1/regions', tags: ['regions'], summary: 'List regions', middleware: [read] as const, responses: { 200: json(z.object({ regions: z.array(regionBody) }), 'every region document'), ...errors } }),
    (c) => c.json({ regions: config().regions }, 200),
  );

  app.openapi(
    createRoute({ method: 'get', path: '/v1/regions/{id}', tags: ['regions'], summary: 'Get a region', middleware: [read] as const, request: { params: idParam }, responses: { 200: json(regionBody, 'the region document (ETag for If-Match)'), ...errors } }),
    (c) => {
      const r = config().regions.find((x) => x.id === c.req.valid('param').id);
      if (!r) return problem(c, 404, `no region "${c.req.valid('param').id}"`);
      c.header('ETag', deps.writes.etag({ kind: 'region', id: r.id }, r));
      return c.json(r, 200);
    },
  );

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
      const doc = c.req.valid('json');
      if (doc.id !== id) return problem(c, 400, 'invalid body', [{ path: 'body.id', message: `must be "${id}", the id in the path` }]);
      return putRegion(c, deps, id, doc);
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
    (c) => againFromNewerCopy(async () => {
      const { id } = c.req.valid('param');
      const before = config().regions.find((x) => x.id === id);
      if (!before) return problem(c, 404, `no region "${id}"`);
      const patch = await readPatch(c);
      if (!patch) return problem(c, 400, 'invalid body', [{ path: 'body', message: 'must be a JSON object (a merge patch)' }]);
      const merged = mergePatch(before, patch) as Record<string, unknown>;
      if (merged.id !== id) return problem(c, 400, 'invalid body', [{ path: 'body.id', message: 'the id cannot be changed: PUT a new region and DELETE this one' }]);
      const parsed = regionSchema.safeParse(merged);
      if (!parsed.success) return problem(c, 400, 'invalid region after the patch', fieldsOf(parsed.error.issues, 'body'));
      return putRegion(c, deps, id, parsed.data, true);
    }),
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
    (c) => deleteRegion(c, deps, c.req.valid('param').id, c.req.valid('query').force === 'true'),
  );
}
