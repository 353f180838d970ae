import { createRoute } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { Api, ApiDeps } from '../api/deps.js';
import type { Env } from '../api/env.js';
import { anyJson, errors, json } from '../api/routes/shared.js';
import type { StatusAccess } from './access.js';
import { statusPage } from './page.js';
import { statusView } from './view.js';

/** The status page at `/` (public, no data) and its data at `GET /v1/status` (viewer). */
export function statusRoutes(app: Api, deps: Pick<ApiDeps, 'control' | 'healthStore' | 'log'> & { access: StatusAccess }) {
  const { access } = deps;

  app.get('/', (c) => {
    const token = c.req.query('token');
    if (token !== undefined) {
      const r = access.exchange(c, token);
      if (!r.ok) return page(c, r.status, r.error);
      deps.log.debug({ path: '/' }, 'status page: viewer token exchanged for a cookie');
      return seeOther(c);
    }
    if (c.req.query('signout') !== undefined) {
      access.signOut(c);
      return seeOther(c);
    }
    return page(c, 200);
  });

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/status',
      tags: ['health'],
      summary: 'What the status page shows: regions with zones, endpoints, probe agreement and capacity; where each country is steered now and why; RTT between probe regions',
      description:
        'Also readable with the status page\'s cookie (a viewer token exchanged at `/?token=`), and without a token from loopback when ARUS_STATUS_OPEN=true.',
      middleware: [access.requireRole('viewer')] as const,
      responses: { 200: json(anyJson, '{ version, at, blind, agents, regions: [{ id, name, lat, lon, state, reason, overrides, zones, probes, capacity }], steering: [{ service, policy, countries: [{ code, name, region, reason, shed }], elsewhere }], rtt: { from, to, ms } }'), ...errors },
    }),
    (c) => {
      const { control } = deps;
      const tracker = control.tracker();
      const view = statusView({
        snapshot: control.current().snapshot,
        endpoint: (key) => tracker.endpoint(key),
        agents: tracker.agents(),
        overrides: deps.healthStore.listOverrides(),
        capacity: control.capacity(),
        latency: control.latency(),
        now: Date.now(),
      });
      c.header('Cache-Control', 'no-store');
      return c.json(view, 200);
    },
  );
}

function seeOther(c: Context<Env>) {
  c.header('Cache-Control', 'no-store');
  c.header('Referrer-Policy', 'no-referrer');
  return c.redirect('/', 303);
}

function page(c: Context<Env>, status: 200 | 401 | 403 | 429, error?: string) {
  const { html, csp, gzip } = statusPage();
  c.header('Content-Security-Policy', csp);
  c.header('X-Content-Type-Options', 'nosniff');
  c.header('Referrer-Policy', 'no-referrer');
  c.header('Cache-Control', 'no-store');
  c.header('Vary', 'Accept-Encoding');
  if (error === undefined && /\bgzip\b/.test(c.req.header('accept-encoding') ?? '')) {
    c.header('Content-Encoding', 'gzip');
    c.header('Content-Type', 'text/html; charset=UTF-8');
    return c.body(new Uint8Array(gzip), status);
  }
  // A refused token: the same page, its sign-in form saying why (no script needed to read it).
  const body = error === undefined ? html : html.replace('<p id="signin-why"></p>', `<p id="signin-why">${escape(error)}</p>`).replace('<section id="signin" aria-labelledby="h-signin" hidden>', '<section id="signin" aria-labelledby="h-signin">');
  return c.html(body, status);
}

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
