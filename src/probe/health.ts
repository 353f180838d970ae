import type { ProbeAgentStats } from './agent.js';

// The probe agent's own /healthz: 200 while it runs, with what an operator
// (or a liveness probe) wants to see at a glance: is each replica of control
// taking its reports, and are rounds going on. Served by `arus probe
// --health-listen` through src/http-listener.ts (TLS, or loopback only).

export type ProbeHealth = {
  ok: true;
  agent: { id: string; region: string };
  /** Some replica takes reports. */
  controlUp: boolean;
  controls: { url: string; up: boolean; lastReportAt: string | null }[];
  rounds: number;
  targetsVersion: number | null;
};

/** The answer to GET /healthz, from the agent's stats now. */
export function probeHealth(agent: { id: string; region: string }, stats: ProbeAgentStats): ProbeHealth {
  return {
    ok: true,
    agent,
    controlUp: stats.controlUp,
    controls: stats.controls.map((c) => ({ url: c.url, up: c.up, lastReportAt: c.lastReportAt === undefined ? null : new Date(c.lastReportAt).toISOString() })),
    rounds: stats.rounds,
    targetsVersion: stats.targetsVersion ?? null,
  };
}

/** A fetch handler (for listenHttp): GET /healthz, and 404 for anything else. */
export function healthHandler(read: () => ProbeHealth): (req: Request) => Response {
  return (req) => {
    const path = new URL(req.url).pathname;
    if (path !== '/healthz') return Response.json({ error: `no route ${req.method} ${path}: this listener serves GET /healthz` }, { status: 404 });
    if (req.method !== 'GET' && req.method !== 'HEAD') return Response.json({ error: `method ${req.method} not allowed on /healthz` }, { status: 405, headers: { allow: 'GET, HEAD' } });
    return Response.json(read(), { headers: { 'cache-control': 'no-store' } });
  };
}
