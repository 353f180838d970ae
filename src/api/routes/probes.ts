import { createRoute, z } from '@hono/zod-openapi';
import { ReportRefused } from '../../control/control.js';
import type { Api, ApiDeps } from '../deps.js';
import { problem } from '../env.js';
import { mismatch, refuseIdentity } from '../identity.js';
import { anyJson, errorBody, errors, json, writeErrors } from './shared.js';

/** Results in one report at most: an agent with more sends them over several (the body limit is 1 MiB anyway). */
export const MAX_REPORT_RESULTS = 10_000;

const result = z.strictObject({
  endpoint: z.string().min(1).max(300),
  ok: z.boolean(),
  rttMs: z.number().nonnegative().optional(),
  error: z.string().max(500).optional(),
  at: z.number().int().nonnegative(),
});
const report = z
  .strictObject({
    agent: z.strictObject({ id: z.string().min(1).max(100), region: z.string().min(1).max(32) }),
    targets: z.number().int().optional(),
    results: z.array(result).max(MAX_REPORT_RESULTS),
  })
  .openapi('ProbeReport');

/** Probe agents: their targets, their reports, and what control knows of them. */
export function probeRoutes(app: Api, deps: ApiDeps) {
  const probe = deps.auth.requireRole('probe');

  app.openapi(
    createRoute({ method: 'get', path: '/v1/probes/targets', tags: ['probes'], summary: 'What probe agents check', middleware: [probe] as const, responses: { 200: json(anyJson, '{ version, targets: [{ endpoint, check }] }'), ...errors } }),
    (c) => c.json(deps.control.targets(), 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/probes/report',
      tags: ['probes'],
      summary: 'A probe agent reports raw results',
      middleware: [probe] as const,
      request: { body: { content: { 'application/json': { schema: report } }, required: true } },
      responses: {
        200: json(z.object({ accepted: z.number(), targets: z.number() }), 'accepted; `targets` is the targets version'),
        ...writeErrors,
        403: json(errorBody, "the body's agent is not the one the credential names"),
        429: json(errorBody, 'the agent reports too often, or is one agent too many: Retry-After says when to send again'),
      },
    }),
    (c) => {
      const body = c.req.valid('json');
      const claim = { agent: body.agent.id, region: body.agent.region };
      const refused = mismatch(c.get('principal'), claim);
      if (refused) return refuseIdentity(c, deps, { subject: `agent:${body.agent.id}`, claim, refused });
      try {
        const ack = deps.control.report(body.agent, body.results);
        deps.onProbeReport?.(body.results, body.agent.region);
        return c.json(ack, 200);
      } catch (err) {
        if (!(err instanceof ReportRefused)) throw err;
        c.header('Retry-After', String(err.retryAfterS));
        return problem(c, 429, err.message);
      }
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/v1/probes', tags: ['probes'], summary: 'Probe agents: last report, vote state, recent results', middleware: [deps.auth.requireRole('viewer')] as const, responses: { 200: json(anyJson, '{ agents: [...] }'), ...errors } }),
    (c) => {
      const tracker = deps.control.tracker();
      const targets = deps.control.targets().targets.length;
      const agents = tracker.agents().map((a) => {
        const votes = [...tracker.all()].flatMap(([endpoint, h]) => h.votes.filter((v) => v.agent === a.id).map((v) => ({ endpoint, ok: v.ok, streak: v.streak, fresh: v.fresh, rttMs: v.rttMs, error: v.error })));
        return { ...a, votes, recent: deps.healthStore.recentResults({ agent: a.id, limit: Math.max(targets, 1) }) };
      });
      return c.json({ agents }, 200);
    },
  );
}
