// Wiring of each role: what `arus up` runs together and `arus <role>` runs alone.
// The composition root (cli.ts) calls these; everything below them receives its dependencies.
// Heavy parts are imported by the role that runs them (a DNS node loads no API, probe or sim).
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import type { Metrics } from './metrics/metrics.js';
import { metricsApp } from './metrics/routes.js';
import type { StaticToken } from './api/auth.js';
import type { Db } from './db/database.js';
import { balancerListen, type Config } from './config/schema.js';
import type { Control } from './control/control.js';
import type { HealthStore } from './db/health-store.js';
import type { Store } from './db/store.js';
import type { ListenAddress } from './dns/server.js';
import type { Logger } from './log.js';
import { listenHttp } from './http-listener.js';
import type { ProbeAgent, ProbeAgentOptions } from './probe/agent.js';
import type { SimServer, SimServerOptions } from './sim/server.js';
import type { ServingState } from './snapshot/source.js';
import { peerIdentity } from './tls/identity.js';
import type { ServerCredentials } from './tls/server.js';

export type Stoppable = { stop(): Promise<void> | void };

export function internalToken(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * Tokens fixed at start: the bootstrap admin token and the in-process
 * probes'. A shared machine token in control's environment is refused: whoever
 * held it could speak for any agent or node.
 */
export function staticTokensFrom(env: NodeJS.ProcessEnv, extra: StaticToken[] = []): StaticToken[] {
  const tokens = [...extra];
  if (env.ARUS_ADMIN_TOKEN) tokens.push({ token: env.ARUS_ADMIN_TOKEN, role: 'admin', name: 'bootstrap-admin' });
  if (env.ARUS_PROBE_TOKEN)
    throw new Error(
      'ARUS_PROBE_TOKEN is set for control: one probe token shared by the fleet lets whoever holds it report as any agent. Unset it, and give each agent its own: arus token create --role probe --agent ID --region ID (or client certificates: --tls-client-ca)',
    );
  if (env.ARUS_DNS_TOKEN)
    throw new Error('ARUS_DNS_TOKEN is set for control: one token shared by DNS nodes lets any of them speak for the others. Unset it, and give each node its own: arus token create --role dns --node ID');
  return tokens;
}

/** How control's API listens, and who it lets in: the same for an embedded control and a replica. */
export type ControlListener = {
  log: Logger;
  listen: ListenAddress;
  staticTokens: StaticToken[];
  /** Routes that need no token. */
  open?: { metrics?: boolean };
  /** The status page's open mode: loopback clients read status without a token. */
  status?: { open?: boolean };
  metrics: Metrics;
  /** HTTPS (and mutual TLS when the credentials have a client CA); plain HTTP is refused off loopback unless `insecurePlaintext`. */
  tls?: ServerCredentials;
  /** The SPIFFE trust domain client certificates name identities in (default `arus`). */
  trustDomain?: string;
  insecurePlaintext?: boolean;
  /** Where hostname endpoints' names are resolved; the system's resolvers unless set. */
  resolvers?: string[];
};

export async function startControl(
  deps: ControlListener & {
    db: Db;
    store: Store;
    healthStore: HealthStore;
    /** RFC 2136 dynamic updates (src/update/): where they are taken, and the key TSIG secrets are encrypted with. */
    update?: { listen: ListenAddress; kek: Buffer };
  },
): Promise<{ control: Control; healthStore: HealthStore; url: string; update?: { port: number }; stop(): Promise<void> }> {
  const { healthStore, store, log } = deps;
  const [{ createControl }, { assembleApi }] = await Promise.all([import('./control/control.js'), import('./api/assemble.js')]);
  const { createDnssecKeyStore } = await import('./db/dnssec-keys.js');
  const control = createControl({ store, healthStore, log: log.child({ component: 'control' }), resolvers: deps.resolvers, dnssecKeys: createDnssecKeyStore(deps.db) });
  control.start();
  // Under mutual TLS the client certificate is the credential (src/tls/identity.ts).
  const peer = deps.tls?.mutual ? (c: { env: unknown }) => peerIdentity((c.env as { incoming?: { socket?: unknown } } | undefined)?.incoming?.socket, deps.trustDomain) : undefined;
  const { app, writes } = assembleApi({ ...deps, control, peer, log: log.child({ component: 'api' }) });
  let http;
  let updates: { udp: number; stop(): Promise<void> } | undefined;
  try {
    http = await listenHttp(app.fetch, deps.listen, { what: 'control', tls: deps.tls, insecurePlaintext: deps.insecurePlaintext });
    if (deps.update) updates = await (await import('./update/start.js')).startUpdates({ ...deps, ...deps.update, writes, control });
  } catch (err) {
    control.stop();
    await http?.stop();
    throw err;
  }
  return {
    control,
    healthStore,
    url: http.url,
    update: updates && { port: updates.udp },
    async stop() {
      control.stop();
      await updates?.stop();
      await http.stop();
    },
  };
}

/**
 * DNS on `workers` threads of its own (src/dns/workers/): nothing else this process does can
 * delay an answer. 0: on this thread's event loop, beside everything else. Prepared before the
 * first snapshot is at hand (the workers' modules load meanwhile), started with it.
 */
export async function prepareDns(deps: { listen: ListenAddress[]; log: Logger; metrics: Metrics; workers: number }) {
  if (deps.workers > 0) {
    const [{ createDnsWorkers }, { observeWorkers }] = await Promise.all([import('./dns/workers/pool.js'), import('./dns/workers/metrics.js')]);
    const pool = createDnsWorkers({ workers: deps.workers, listen: deps.listen, log: deps.log });
    pool.warm();
    deps.metrics.observeDnsServer(observeWorkers(deps.metrics, pool).server);
    return {
      async start(getState: () => ServingState) {
        const bound = await pool.start(getState);
        yieldToWorkers(pool.threadIds(), deps.log);
        return { bound, stop: () => pool.stop() };
      },
      stop: () => pool.stop(),
    };
  }
  const [{ createResponder }, { createDnsServer }] = await Promise.all([import('./dns/responder.js'), import('./dns/server.js')]);
  return {
    async start(getState: () => ServingState) {
      const responder = createResponder({ getState, log: deps.log });
      deps.metrics.observeResponder(responder);
      const server = createDnsServer({ listen: deps.listen, responder, log: deps.log });
      deps.metrics.observeDnsServer(server.stats);
      const bound = await server.start();
      return { bound, stop: () => server.stop() };
    },
    stop: () => undefined,
  };
}

/**
 * Every thread of the process but the DNS workers — the main thread (control, the API, probe
 * intake, snapshot streaming), V8's helpers (the main heap's garbage collection), libuv's pool —
 * lowers its scheduling priority (nice 10; on Linux a thread's own) once the workers run at the
 * normal one: when the cores are busy, the kernel runs a worker with a query waiting first, so
 * control cannot delay an answer by more than a scheduling slice. Control still gets every idle
 * cycle. Threads made later by the main thread inherit its priority.
 */
function yieldToWorkers(workers: readonly number[], log: Logger): void {
  try {
    setPriority(Math.max(getPriority(), MAIN_THREAD_NICE));
    const keep = new Set(workers);
    for (const tid of readdirSync('/proc/self/task').map(Number)) if (!keep.has(tid)) setPriority(tid, Math.max(getPriority(tid), MAIN_THREAD_NICE));
  } catch (err) {
    log.debug({ err }, 'cannot lower the priority of the threads that are not DNS workers');
  }
}

const MAIN_THREAD_NICE = 10;

export async function startDns(deps: { getState: () => ServingState; listen: ListenAddress[]; log: Logger; metrics: Metrics; workers: number }) {
  return (await prepareDns(deps)).start(deps.getState);
}

/** `/metrics` alone, for a role without the admin API (`arus dns`). */
export async function startMetricsServer(deps: { metrics: Metrics; listen: ListenAddress; tls?: ServerCredentials; insecurePlaintext?: boolean }): Promise<Stoppable & { url: string }> {
  const app = metricsApp(deps.metrics);
  const http = await listenHttp(app.fetch, deps.listen, { what: "the DNS node's /metrics", tls: deps.tls, insecurePlaintext: deps.insecurePlaintext });
  return { url: `${http.url}/metrics`, stop: http.stop };
}

/** Probe agents in this process (`arus up`): one per region, each with its own bound token. */
export async function startProbes(deps: {
  agents: { agent: string; region: string; token: string }[];
  controlUrl: string;
  fetchImpl?: ProbeAgentOptions['fetchImpl'];
  log: Logger;
  intervalMs?: number;
}): Promise<Stoppable> {
  const { createProbeAgent } = await import('./probe/agent.js');
  const agents: ProbeAgent[] = deps.agents.map((a) =>
    createProbeAgent({ id: a.agent, region: a.region, controlUrl: deps.controlUrl, token: a.token, fetchImpl: deps.fetchImpl, intervalMs: deps.intervalMs, log: deps.log }),
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
