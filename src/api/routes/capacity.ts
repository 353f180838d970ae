import { createHash } from 'node:crypto';
import { createRoute, z } from '@hono/zod-openapi';
import { canonicalJson } from '../../db/documents.js';
import { SCALE_EVENT_KINDS } from '../../balancer/scale/report.js';
import type { Api, ApiDeps } from '../deps.js';
import { problem } from '../env.js';
import { mismatch, refuseIdentity } from '../identity.js';
import { anyJson, errorBody, errors, json, writeErrors } from './shared.js';

const count = z.number().int().min(0).max(100_000);
const poolFigures = z
  .strictObject({ model: z.string().min(1).max(200), desired: count, current: count, warming: count, draining: count, ready: count, scaling: z.enum(['off', 'local', 'webhook']) })
  .openapi('PoolScaling');
const scaleEvent = z
  .strictObject({
    kind: z.enum(SCALE_EVENT_KINDS),
    subject: z.string().min(1).max(300),
    oldState: z.string().max(100),
    newState: z.string().max(100),
    reason: z.string().max(1000),
    at: z.number().int().min(0),
  })
  .openapi('ScaleEvent');

const report = z
  .strictObject({
    region: z.string().min(1).max(32),
    balancer: z.string().min(1).max(100),
    instances: z.number().int().min(0).max(100_000),
    ready: z.number().int().min(0).max(100_000),
    outstanding: z.number().int().min(0),
    freeConcurrency: z.number().int().min(0),
    queueDepth: z.number().int().min(0),
    kvHeadroom: z.number().min(0).max(1).optional(),
    /** Instances that cannot take requests, and why: the evidence a report of 0 ready gives control. */
    unavailable: z.array(z.strictObject({ id: z.string().min(1).max(100), reason: z.string().max(300) })).max(1000).optional(),
    /** Each model pool's scaling figures (src/balancer/scale/). */
    pools: z.array(poolFigures).max(100).optional(),
    /** Scaling steps since the last report that was accepted: control puts them in the history. */
    events: z.array(scaleEvent).max(100).optional(),
  })
  .openapi('CapacityReport');

/** Balancers: their configuration, and their capacity reports that steer DNS away from saturated regions. */
export function capacityRoutes(app: Api, deps: ApiDeps) {
  const sections = balancerSections(deps);
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/balancers/{region}',
      tags: ['capacity'],
      summary: "A region's balancer configuration (for `arus balancer`, which polls it)",
      description:
        'The `ETag` is a digest of the section itself, the same on every replica; with `If-None-Match` naming it the answer is 304 and no body, so a balancer polling several times a second costs little.',
      middleware: [deps.auth.requireRole('balancer')] as const,
      request: {
        params: z.object({ region: z.string().min(1).max(32).openapi({ param: { name: 'region', in: 'path' }, example: 'jkt' }) }),
        headers: z.object({ 'if-none-match': z.string().max(1000).optional().openapi({ description: 'the ETag of the section held: 304 while it is still the one' }) }),
      },
      responses: { 200: json(anyJson, 'the balancer section of the region document'), 304: { description: 'the section named by If-None-Match is still the one' }, ...errors },
    }),
    (c) => {
      const { region } = c.req.valid('param');
      const refused = mismatch(c.get('principal'), { region });
      if (refused) return refuseIdentity(c, deps, { subject: `region:${region}`, claim: { region }, refused });
      const found = sections(region);
      if (found === 'no region') return problem(c, 404, `no region "${region}"`);
      if (found === 'no section') return problem(c, 404, `region ${region} has no balancer section`);
      c.header('ETag', found.etag);
      c.header('Cache-Control', 'no-cache');
      const held = c.req.header('if-none-match');
      if (held && held.split(',').some((t) => t.trim().replace(/^W\//, '') === found.etag)) return c.body(null, 304);
      return c.json(found.doc, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/capacity',
      tags: ['capacity'],
      summary: 'A balancer reports its capacity',
      middleware: [deps.auth.requireRole('balancer')] as const,
      request: { body: { content: { 'application/json': { schema: report } }, required: true } },
      responses: { 200: json(z.object({ accepted: z.boolean() }), 'accepted'), ...writeErrors, 403: json(errorBody, 'the report is for another region than the credential names') },
    }),
    (c) => {
      const r = c.req.valid('json');
      const refused = mismatch(c.get('principal'), { region: r.region });
      if (refused) return refuseIdentity(c, deps, { subject: `region:${r.region}`, claim: { region: r.region }, refused });
      if (!deps.store.getConfig()?.regions.some((x) => x.id === r.region)) return problem(c, 404, `no region "${r.region}"`);
      deps.control.reportCapacity({ ...r, at: Date.now() });
      return c.json({ accepted: true }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/capacity',
      tags: ['capacity'],
      summary: "Regions' capacity: the latest balancer reports, the share each region sheds, and every model pool's scaling signals",
      description:
        '`pools` lists, per region and model, `desired` (the instances that keep expected queueing under the target), `current` (every instance that exists, warming and draining ones included), `warming`, `draining` and `ready`, from the latest report of each balancer.',
      middleware: [deps.auth.requireRole('viewer')] as const,
      responses: { 200: json(anyJson, '{ regions: { <id>: { shed, saturation, reason } }, reports: [...], pools: [{ region, balancer, model, desired, current, warming, draining, ready, scaling }] }'), ...errors },
    }),
    (c) => {
      const view = deps.control.capacity();
      const pools = view.reports.flatMap((r) => (r.pools ?? []).map((p) => ({ region: r.region, balancer: r.balancer, ...p })));
      return c.json({ ...view, pools }, 200);
    },
  );
}

type Section = { doc: unknown; etag: string };

/** A strong ETag of the section's canonical JSON: equal sections, equal tags, on any replica. */
const etag = (doc: unknown) => `"b-${createHash('sha256').update(canonicalJson(doc)).digest('base64url').slice(0, 22)}"`;

/**
 * Each region's balancer section and its ETag, worked out again only when
 * the configuration's version moves: the polls of every balancer cost a
 * counter read, not a parse of every region.
 */
function balancerSections(deps: Pick<ApiDeps, 'store'>): (region: string) => Section | 'no region' | 'no section' {
  let cached: { version: number; byRegion: Map<string, Section | undefined> } | undefined;
  return (region) => {
    const version = deps.store.version();
    if (cached?.version !== version) {
      const regions = deps.store.getConfig()?.regions ?? [];
      cached = { version, byRegion: new Map(regions.map((r) => [r.id, r.balancer && { doc: r.balancer, etag: etag(r.balancer) }])) };
    }
    if (!cached.byRegion.has(region)) return 'no region';
    return cached.byRegion.get(region) ?? 'no section';
  };
}
