// Wiring of each role: what `arus up` runs together and `arus <role>` runs alone.
// The composition root (cli.ts) calls these; everything below them receives its dependencies.
// Heavy parts are imported by the role that runs them (a DNS node loads no API, probe or sim).
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { Metrics } from './metrics/metrics.js';
import { metricsApp } from './metrics/routes.js';
import type { StaticToken } from './api/auth.js';
import type { Db } from './db/database.js';
import { balancerListen, type Config } from './config/schema.js';
import type { Control } from './control/control.js';
import type { HealthStore } from './db/health-store.js';
import type { Store } from './db/store.js';
import { createResponder } from './dns/responder.js';
import { createDnsServer, type ListenAddress } from './dns/server.js';
import type { Logger } from './log.js';
import type { ProbeAgent } from './probe/agent.js';
import type { SimServer, SimServerOptions } from './sim/server.js';
import type { ServingState } from './snapshot/source.js';

export type Stoppable = { stop(): Promise<void> | void };

export function internalToken(): string {
  return randomBytes(24).toString('base64url');
}

/** Tokens fixed at start: the bootstrap admin token, a fleet probe token, a DNS-node token, and the in-process probes'. */
export function staticTokensFrom(env: NodeJS.ProcessEnv, extra: StaticToken[] = []): StaticToken[] {
  const tokens = [...extra];
  if (env.ARUS_ADMIN_TOKEN) tokens.push({ token: env.ARUS_ADMIN_TOKEN, role: 'admin', name: 'bootstrap-admin' });
  if (env.ARUS_PROBE_TOKEN) tokens.push({ token: env.ARUS_PROBE_TOKEN, role: 'probe', name: 'probe' });
  if (env.ARUS_DNS_TOKEN) tokens.push({ token: env.ARUS_DNS_TOKEN, role: 'dns', name: 'dns' });
  return tokens;
}

export async function startControl(deps: {
  db: Db;
  store: Store;
  healthStore: HealthStore;
  log: Logger;
  listen: ListenAddress;
  staticTokens: StaticToken[];
  /** Routes that need no token. */
  open?: { metrics?: boolean };
  /** The status page's open mode: loopback clients read status without a token. */
  status?: { open?: boolean };
  metrics: Metrics;
}): Promise<{ control: Control; healthStore: HealthStore; url: string; stop(): Promise<void> }> {
  const { healthStore, store, log } = deps;
  const [{ createControl }, { assembleApi }] = await Promise.all([import('./control/control.js'), import('./api/assemble.js')]);
  const control = createControl({ store, healthStore, log: log.child({ component: 'control' }) });
  control.start();
  const { app } = assembleApi({ ...deps, control, log: log.child({ component: 'api' }) });
  const http = await listenHttp(app.fetch, deps.listen);
  return {
    control,
    healthStore,
    url: http.url,
    async stop() {
      control.stop();
      await http.stop();
    },
  };
}

export async function startDns(deps: { getState: () => ServingState; listen: ListenAddress[]; log: Logger; metrics: Metrics }) {
  const responder = createResponder({ getState: deps.getState, log: deps.log });
  deps.metrics.observeResponder(responder);
  const server = createDnsServer({ listen: deps.listen, responder, log: deps.log });
  const bound = await server.start();
  return { bound, stop: () => server.stop() };
}

/** `/metrics` alone, for a role without the admin API (`arus dns`). */
export async function startMetricsServer(deps: { metrics: Metrics; listen: ListenAddress }): Promise<Stoppable & { url: string }> {
  const app = metricsApp(deps.metrics);
  const http = await listenHttp(app.fetch, deps.listen);
  return { url: `${http.url}/metrics`, stop: http.stop };
}

export async function startProbes(deps: { regions: string[]; controlUrl: string; token: string; log: Logger; intervalMs?: number }): Promise<Stoppable> {
  const { createProbeAgent } = await import('./probe/agent.js');
  const agents: ProbeAgent[] = deps.regions.map((region) =>
    createProbeAgent({ id: `probe-${region}`, region, controlUrl: deps.controlUrl, token: deps.token, intervalMs: deps.intervalMs, log: deps.log }),
  );
  for (const a of agents) a.start();
  return { stop: async () => void (await Promise.all(agents.map((a) => a.stop()))) };
}

/**
 * Where `arus up` and `arus sim --regions` start simulated model servers: every
 * loopback balancer instance, and every loopback HTTP check target that is not
 * a balancer's own listen address (a check through the balancer reaches the
 * simulated instances behind it).
 */
export function simTargets(config: Pick<Config, 'regions'>): ListenAddress[] {
  const seen = new Map<string, ListenAddress>();
  const balancers = new Set<string>();
  const loopback = (raw: string): ListenAddress | undefined => {
    const u = new URL(raw);
    const host = u.hostname.replace(/^\[|\]$/g, '');
    if (u.protocol !== 'http:' || !(host === 'localhost' || host.startsWith('127.') || host === '::1')) return undefined;
    return { address: host === 'localhost' ? '127.0.0.1' : host, port: Number(u.port || 80) };
  };
  const add = (l: ListenAddress | undefined) => l && !balancers.has(`${l.address}:${l.port}`) && seen.set(`${l.address}:${l.port}`, l);
  for (const r of config.regions) {
    if (!r.balancer) continue;
    for (const l of balancerListen(r.balancer)) balancers.add(`${l.address}:${l.port}`);
    for (const i of r.balancer.instances) add(loopback(i.url));
  }
  for (const r of config.regions)
    for (const z of r.zones)
      for (const e of z.endpoints) if (e.check?.type === 'http') add(loopback(e.check.url));
  return [...seen.values()];
}

export async function startSims(deps: {
  listen: ListenAddress[];
  log: Logger;
  model?: string;
  warmupMs?: number;
  /** Further simulated-GPU knobs (speed, batch, KV cache, kinds, memory): see src/sim/README.md. */
  sim?: Partial<SimServerOptions>;
}): Promise<{ sims: SimServer[]; stop(): Promise<void> }> {
  const { log } = deps;
  const { createSimServer } = await import('./sim/server.js');
  const sims: SimServer[] = [];
  for (const l of deps.listen) {
    const knobs = Object.fromEntries(Object.entries(deps.sim ?? {}).filter(([, v]) => v !== undefined));
    const sim = createSimServer({ ...knobs, host: l.address, port: l.port, model: deps.model, warmupMs: deps.warmupMs, log });
    try {
      await sim.start();
      sims.push(sim);
    } catch (err) {
      log.warn({ err, address: l.address, port: l.port }, 'cannot start simulated model server');
    }
  }
  return { sims, stop: async () => void (await Promise.all(sims.map((s) => s.stop()))) };
}

/** Serves a fetch handler (Hono) on an address; port 0 picks a free one. */
async function listenHttp(fetch: Parameters<typeof serve>[0]['fetch'], listen: ListenAddress): Promise<{ url: string; stop: () => Promise<void> }> {
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch, hostname: listen.address, port: listen.port }, () => resolve(s));
    s.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  const host = listen.address.includes(':') ? `[${listen.address}]` : listen.address;
  return {
    url: `http://${host}:${port}`,
    // Streams (events, snapshots) never end on their own: cut them, their clients reconnect.
    stop: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        (server as import('node:http').Server).closeAllConnections?.();
      }),
  };
}
