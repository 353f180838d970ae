// The zone's static records, one RRset at a time: list, get, put and delete
// `/v1/records/{name}/{type}`. Records live in the zone's settings, so every
// write is an apply of the whole zone document (as a service's is), checked
// by the same rules as `arus apply zone.yaml`.
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { ConfigError, parseZoneDoc, validateConfig, type ConfigIssue } from '../../config/load.js';
import { ownerName, RECORD_TYPES, type RecordType } from '../../config/record-values.js';
import { recordOwner, recordSchema, type RecordDoc } from '../../config/records.js';
import type { ZoneDoc } from '../../config/schema.js';
import { contentEtag } from '../../db/writes.js';
import type { Api, ApiDeps } from '../deps.js';
import { fieldsOf, problem, type Env, type FieldError } from '../env.js';
import { againFromNewerCopy, condition, matches, writeThrough } from '../write.js';
import { written } from './config-writes.js';
import { errors, json, writeErrors } from './shared.js';

const record = z
  .object({ name: z.string(), type: z.enum(RECORD_TYPES), ttl: z.number().int(), values: z.array(z.string()) })
  .openapi('Record', { example: { name: '@', type: 'CAA', ttl: 300, values: ['0 issue "letsencrypt.org"'] } });
const recordBody = z
  .strictObject({
    name: z.string().optional().openapi({ description: 'the name in the path, when given' }),
    type: z.string().optional().openapi({ description: 'the type in the path, when given' }),
    ttl: z.number().int().min(0).max(604_800).optional().openapi({ description: 'seconds; 300 when absent' }),
    value: z.string().optional().openapi({ description: 'one value, in its type\'s presentation format ("10 mx.example.net.")' }),
    values: z.array(z.string()).optional().openapi({ description: 'several values (one record each); give value or values' }),
  })
  .openapi('RecordBody', { example: { ttl: 60, values: ['token-1', 'token-2'] } });
const rrsetParams = z.object({
  name: z.string().openapi({ param: { name: 'name', in: 'path' }, description: 'relative to the apex (www, _acme-challenge, *.dev), @ for the apex, or absolute with a final dot', example: '_acme-challenge' }),
  type: z.string().openapi({ param: { name: 'type', in: 'path' }, example: 'TXT' }),
});
const listQuery = z.object({
  name: z.string().optional().openapi({ description: 'only this name (relative, @ or absolute)' }),
  type: z.string().optional().openapi({ description: 'only this type' }),
});

type Target = { owner: string; type: RecordType };

/** The RRset a path or query names, or the field errors that say why it names none. */
function target(zone: ZoneDoc, where: string, name: string | undefined, type: string | undefined): Partial<Target> | FieldError[] {
  const out: Partial<Target> = {};
  const bad: FieldError[] = [];
  if (name !== undefined) {
    const o = ownerName(name, zone.apex);
    if ('error' in o) bad.push({ path: `${where}.name`, message: o.error });
    else out.owner = o.name;
  }
  if (type !== undefined) {
    const t = type.toUpperCase() as RecordType;
    if (!RECORD_TYPES.includes(t)) bad.push({ path: `${where}.type`, message: `must be one of ${RECORD_TYPES.join(', ')}` });
    else out.type = t;
  }
  return bad.length ? bad : out;
}

const sameRrset = (zone: ZoneDoc, t: Target) => (r: RecordDoc) => r.type === t.type && recordOwner(r, zone.apex) === t.owner;

/** An RRset's ETag: its own content's in the embedded mode; the zone document's revision when replicated. */
const recordEtag = (deps: ApiDeps, zone: ZoneDoc, r: RecordDoc) => {
  const zoneTag = deps.writes.etag({ kind: 'zone' }, zone);
  return zoneTag === contentEtag(zone) ? contentEtag(r) : zoneTag;
};

/** The zone's checks of the new document, the entry's own issues named as the body's fields. */
function checked(deps: ApiDeps, doc: unknown, index: number): ZoneDoc | FieldError[] {
  // As fieldsOf spells paths (body.values.0); the zone's other fields keep their place in the zone's settings.
  const mine = `records.${index}`;
  const field = (i: ConfigIssue): FieldError => {
    const path = i.path.replace(/^zone\./, '').replace(/\[(\d+)\]/g, '.$1');
    return { path: path === mine ? 'body' : path.startsWith(`${mine}.`) ? `body.${path.slice(mine.length + 1)}` : `zone.${path}`, message: i.message };
  };
  try {
    const zone = parseZoneDoc(doc, 'zone-settings');
    validateConfig({ zone, regions: deps.store.getConfig()!.regions });
    return zone;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.issues.map(field);
  }
}

// A PUT (`rrset`) or a DELETE (none): conditional on If-Match, 201 when it creates the RRset.
async function putRecord(c: Context<Env>, deps: ApiDeps, t: Target, spelled: string, rrset: RecordDoc | undefined) {
  const zone = deps.store.getConfig()!.zone;
  const records = zone.records ?? [];
  const index = records.findIndex(sameRrset(zone, t));
  const before = index >= 0 ? records[index] : undefined;
  const label = `${t.owner} ${t.type}`;
  if (!before && !rrset) return problem(c, 404, `no record ${label}`);
  const tag = before && recordEtag(deps, zone, before);
  if (tag && !matches(c, tag)) return problem(c, 412, `${label} has changed: its ETag is now ${tag}`);
  if (!before && c.req.header('if-match') && c.req.header('if-match') !== '*') return problem(c, 412, `${label} does not exist`);
  // A replaced RRset keeps the name as the zone spells it; a new one takes the path's.
  const after = rrset && { ...rrset, name: before?.name ?? spelled };
  const next = after ? (before ? records.map((r, i) => (i === index ? after : r)) : [...records, after]) : records.filter((_, i) => i !== index);
  const { records: _, ...rest } = zone;
  const doc = checked(deps, next.length ? { ...rest, records: next } : rest, before ? index : records.length);
  if (Array.isArray(doc)) return problem(c, 400, 'invalid record', doc);
  const status = before || !rrset ? 200 : 201;
  const ifMatch = condition(c, { kind: 'zone' }, tag && deps.writes.etag({ kind: 'zone' }, zone));
  const result = await writeThrough(c, deps, { subject: `record:${t.owner}/${t.type}`, before: before ?? null, after: after ?? null, status, ifMatch, fromCopy: true }, (o) =>
    deps.writes.apply({ zone: doc, regions: [] }, { actor: c.get('principal').name, ...o }),
  );
  const now = deps.store.getConfig()!.zone;
  const stored = now.records?.find(sameRrset(now, t));
  if (stored) c.header('ETag', recordEtag(deps, now, stored));
  return c.json(result, status as 200);
}

export function recordRoutes(app: Api, deps: ApiDeps) {
  const { store, auth } = deps;
  const read = auth.requireRole('viewer');
  const write = auth.requireRole('admin');
  const zone = () => store.getConfig()!.zone;

  app.openapi(
    createRoute({ method: 'get', path: '/v1/records', tags: ['records'], summary: 'List static records', middleware: [read] as const, request: { query: listQuery }, responses: { 200: json(z.object({ records: z.array(record) }), 'every RRset, or those of a name or type'), ...errors } }),
    (c) => {
      const q = c.req.valid('query');
      const t = target(zone(), 'query', q.name, q.type);
      if (Array.isArray(t)) return problem(c, 400, 'invalid query', t);
      const z0 = zone();
      const records = (z0.records ?? []).filter((r) => (!t.type || r.type === t.type) && (!t.owner || recordOwner(r, z0.apex) === t.owner));
      return c.json({ records }, 200);
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/v1/records/{name}/{type}', tags: ['records'], summary: 'Get an RRset', middleware: [read] as const, request: { params: rrsetParams }, responses: { 200: json(record, 'the RRset (ETag)'), ...errors } }),
    (c) => {
      const p = c.req.valid('param');
      const z0 = zone();
      const t = target(z0, 'path', p.name, p.type);
      if (Array.isArray(t)) return problem(c, 400, 'invalid path', t);
      const r = (z0.records ?? []).find(sameRrset(z0, t as Target));
      if (!r) return problem(c, 404, `no record ${t.owner} ${t.type}`);
      c.header('ETag', recordEtag(deps, z0, r));
      return c.json(r, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/v1/records/{name}/{type}',
      tags: ['records'],
      summary: 'Create or replace an RRset',
      middleware: [write] as const,
      request: { params: rrsetParams, body: { content: { 'application/json': { schema: recordBody } }, required: true } },
      responses: { 200: json(written, 'replaced'), 201: json(written, 'created'), ...writeErrors },
    }),
    (c) =>
      againFromNewerCopy(() => {
        const p = c.req.valid('param');
        const body = c.req.valid('json');
        const z0 = zone();
        const t = target(z0, 'path', p.name, p.type);
        if (Array.isArray(t)) return problem(c, 400, 'invalid path', t);
        const inBody = target(z0, 'body', body.name, body.type);
        const mismatch: FieldError[] = Array.isArray(inBody) ? inBody : [];
        if (!Array.isArray(inBody) && inBody.owner !== undefined && inBody.owner !== t.owner) mismatch.push({ path: 'body.name', message: `must be ${t.owner}, the name in the path` });
        if (!Array.isArray(inBody) && inBody.type !== undefined && inBody.type !== t.type) mismatch.push({ path: 'body.type', message: `must be ${t.type}, the type in the path` });
        if (mismatch.length) return problem(c, 400, 'invalid body', mismatch);
        const parsed = recordSchema.safeParse({ ...body, name: p.name, type: t.type });
        if (!parsed.success) return problem(c, 400, 'invalid body', fieldsOf(parsed.error.issues, 'body'));
        return putRecord(c, deps, t as Target, parsed.data.name, parsed.data);
      }),
  );

  app.openapi(
    createRoute({ method: 'delete', path: '/v1/records/{name}/{type}', tags: ['records'], summary: 'Delete an RRset', middleware: [write] as const, request: { params: rrsetParams }, responses: { 200: json(written, 'deleted'), ...writeErrors } }),
    (c) =>
      againFromNewerCopy(() => {
        const p = c.req.valid('param');
        const t = target(zone(), 'path', p.name, p.type);
        if (Array.isArray(t)) return problem(c, 400, 'invalid path', t);
        return putRecord(c, deps, t as Target, '', undefined);
      }),
  );
}
