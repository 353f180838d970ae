import { balancerListen, type BalancerDoc } from '../config/schema.js';
import type { Logger } from '../log.js';
import { requireSecureListener } from '../tls/plaintext.js';
import type { ServerCredentials } from '../tls/server.js';
import { createBalancerMetrics } from './metrics.js';
import { pickerOf } from './pickers/create-picker.js';
import { createCapacityReporter, type CapacitySink } from './capacity-report.js';
import { createPool } from './pool.js';
import type { InstanceState } from './types.js';
import { createProxy } from './proxy.js';
import { createReadiness } from './readiness.js';
import { reconfigure, type Reconfigured } from './reconfigure.js';
import { createScaler } from './scale/scaler.js';
import { createBalancerServer, type BalancerHealth } from './server.js';

export type { CapacitySink } from './capacity-report.js';

/** Whether the balancer's link to control works, and to which replica, for /healthz. */
export type ControlStatus = () => BalancerHealth['control'];

export type Balancer = Awaited<ReturnType<typeof startBalancer>>;

/**
 * One region's balancer, assembled from its document: pool, picker, proxy,
 * readiness checks, the HTTP server, and a periodic capacity report. A new
 * document applies live (`reconfigure`), but for its listen addresses.
 */
export async function startBalancer(deps: {
  region: string;
  id: string;
  doc: BalancerDoc;
  log: Logger;
  report?: CapacitySink;
  listen?: { address: string; port: number };
  /** HTTPS for clients; plain HTTP is refused off loopback unless `insecurePlaintext`. */
  tls?: ServerCredentials;
  insecurePlaintext?: boolean;
  /** The link to control, as /healthz shows it; in-process (`arus up`) unless set. */
  control?: ControlStatus;
}) {
  const { log } = deps;
  let doc = deps.doc;
  const listen = deps.listen ? [deps.listen] : balancerListen(doc);
  for (const l of listen) requireSecureListener(`the balancer of ${deps.region}`, l, { tls: deps.tls !== undefined, insecurePlaintext: deps.insecurePlaintext });
  const pool = createPool({
    instances: doc.instances.map((i) => ({ ...i })),
    picker: pickerOf(doc),
    slowStartMs: doc.slowStartMs,
    maxConcurrency: doc.maxConcurrentPerInstance,
    outlier: doc.outlier,
  });
  // The metrics read the proxy's stats when scraped. The proxy reports every upstream outcome through
  // release(): the metrics see each one on its way.
  const metrics = createBalancerMetrics({ region: deps.region, stats: () => proxy.stats(), pool, scaling: () => scaler.figures() });
  // An ejection is reported at once, not on the report's schedule: it is evidence control acts on (balancer-evidence.ts).
  const ejected = (s: InstanceState) => {
    const c = pool.states().find((x) => x.instance.id === s.instance.id);
    return c?.ejectedUntil !== undefined && c.ejectedUntil > Date.now();
  };
  const observed: typeof pool = { ...pool, release: (s, outcome) => {
    metrics.observe(s, outcome);
    const was = !outcome.ok && ejected(s);
    pool.release(s, outcome);
    if (!outcome.ok && !was && ejected(s)) void report();
  } };
  const proxy = createProxy({ pool: observed, log, maxConcurrentPerInstance: doc.maxConcurrentPerInstance, maxQueue: doc.maxQueue, queueTimeoutMs: doc.queueTimeoutMs, batching: doc.batching, fallbacks: doc.fallbacks, staleCache: doc.staleCache });
  // The scaler's instances join the document's; a change is checked at once, and capacity may have appeared.
  const applyInstances = () => {
    pool.setInstances([...doc.instances.map((i) => ({ ...i })), ...scaler.extra()]);
    proxy.configure({ maxConcurrentPerInstance: doc.maxConcurrentPerInstance, maxQueue: doc.maxQueue, queueTimeoutMs: doc.queueTimeoutMs, batching: doc.batching, fallbacks: doc.fallbacks, staleCache: doc.staleCache });
    void readiness.checkNew().then(() => proxy.wake(), (err: unknown) => log.debug({ err }, 'readiness check of new instances failed; the next round checks them'));
    void report();
  };
  const scaler = createScaler({ region: deps.region, doc, pool, queued: (prefix) => proxy.queued(prefix), apply: applyInstances, log: log.child({ component: 'scaler' }) });
  const report = createCapacityReporter({ region: deps.region, id: deps.id, sink: deps.report, pool, queueDepth: () => proxy.stats().queueDepth, scaling: scaler, log });
  const readiness = createReadiness({
    pool,
    log,
    onChange: () => {
      proxy.wake();
      void report();
    },
  });
  // The balancer knows which instances are ready before it takes a request (bounded by the checks' deadline).
  await readiness.checkAll();
  readiness.start();
  const control = deps.control ?? (() => ({ connected: true, url: null }));
  const healthz = (): BalancerHealth => {
    const c = pool.capacity();
    return { ok: true, region: deps.region, control: control(), instances: { ready: c.ready, total: c.instances } };
  };
  const servers = listen.map((l) => createBalancerServer({ host: l.address, port: l.port, proxy, log, metrics, tls: deps.tls, healthz }));
  const bound: { address: string; port: number }[] = [];
  try {
    for (const [i, server] of servers.entries()) bound.push({ address: listen[i].address, port: (await server.start()).port });
  } catch (err) {
    await Promise.all([readiness.stop(), ...servers.map((s) => s.stop()), scaler.stop()]);
    await proxy.close();
    throw err;
  }

  let timer = setInterval(() => void report(), doc.reportEveryMs).unref();

  return {
    /** The first listener's port. */
    port: bound[0].port,
    /** Every address and port it listens on. */
    bound,
    pool,
    proxy,
    scaler,
    /** The document in force. */
    get doc() {
      return doc;
    },
    healthz,
    /**
     * Applies a new document now: instances added, removed or re-weighted,
     * the strategy and the limits; requests under way finish where they
     * started. Listen addresses cannot move without a restart: a change of
     * them is logged and reported, and the old ones stay.
     */
    reconfigure(next: BalancerDoc): Reconfigured {
      try {
        scaler.configure(next);
      } catch (err) {
        // The rest of the document still applies; the message names what to fix (a webhook's token variable, say).
        log.error({ err }, 'autoscale settings not applied');
      }
      const result = reconfigure({ pool, proxy, readiness, log, listenFixed: deps.listen !== undefined, extra: () => scaler.extra() }, doc, next);
      if (next.reportEveryMs !== doc.reportEveryMs) {
        clearInterval(timer);
        timer = setInterval(() => void report(), next.reportEveryMs).unref();
      }
      doc = next;
      return result;
    },
    async stop() {
      clearInterval(timer);
      await readiness.stop();
      await Promise.all(servers.map((s) => s.stop()));
      await scaler.stop();
      await proxy.close();
    },
  };
}

