import { Gauge, Histogram, Registry } from 'prom-client';
import type { Pool, Outcome } from './pool.js';
import type { ProxyStats } from './proxy.js';
import { registerPrefixMetrics } from './prefix-metrics.js';
import type { PoolFigures } from './scale/report.js';
import { readCounter, readGauge } from './read-metrics.js';
import type { InstanceState } from './types.js';

/** Latency buckets (s) that fit both embedding calls and long generations. */
const MAX_CHILDREN = 4096;
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/**
 * The balancer's own Prometheus metrics: request latency per instance and
 * pool (model), so p50/p99 can be read; queue depth, ejections, retries,
 * overloads, fallbacks and batches read from the proxy's counters at scrape.
 */
export function createBalancerMetrics(deps: {
  region: string;
  stats: () => ProxyStats;
  pool: Pick<Pool, 'states' | 'capacity'> & Partial<Pick<Pool, 'prefixStats'>>;
  /** Each model pool's scaling figures (scale/scaler.ts). */
  scaling?: () => PoolFigures[];
}) {
  const registry = new Registry();
  registry.setDefaultLabels({ region: deps.region });
  const latency = new Histogram({ name: 'arus_balancer_request_seconds', help: 'Upstream request duration by instance and pool (model)', labelNames: ['instance', 'pool', 'outcome'], buckets: BUCKETS, registers: [registry] });
  const children = new Map<string, ReturnType<typeof latency.labels>>();
  const fromStats = (name: string, help: string, read: (s: ProxyStats) => number | undefined) => readCounter(registry, name, help, () => read(deps.stats()));
  fromStats('arus_balancer_requests_total', 'Client requests received', (s) => s.requests);
  fromStats('arus_balancer_retries_total', 'Requests retried on another instance', (s) => s.retries);
  fromStats('arus_balancer_retries_denied_total', 'Retries refused by the retry budget', (s) => s.retriesDenied);
  fromStats('arus_balancer_overloaded_total', '503s for a full queue or a queue deadline', (s) => s.overloaded);
  fromStats('arus_balancer_fallbacks_total', 'Requests served by a fallback model', (s) => s.fallbacks);
  fromStats('arus_balancer_batches_total', 'Upstream embedding calls sent by the batcher', (s) => s.batches);
  fromStats('arus_balancer_batched_calls_total', 'Client embedding calls carried in batches', (s) => s.batchedCalls);
  fromStats('arus_balancer_stale_served_total', 'Requests answered from the stale cache (x-arus-cache: stale) when nothing could serve them', (s) => s.staleServed);
  fromStats('arus_balancer_stale_misses_total', 'Cacheable requests the stale cache had nothing for: they got the 503', (s) => s.staleMisses);
  readGauge(registry, 'arus_balancer_queue_depth', 'Requests waiting for a free instance', () => deps.stats().queueDepth);
  new Gauge({
    name: 'arus_balancer_instances',
    help: 'Instances by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const c = deps.pool.capacity();
      this.set({ state: 'configured' }, c.instances);
      this.set({ state: 'ready' }, c.ready);
      this.set({ state: 'ejected' }, c.ejected);
    },
  });
  new Gauge({
    name: 'arus_balancer_outstanding',
    help: 'Requests in flight per instance',
    labelNames: ['instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of deps.pool.states()) this.set({ instance: s.instance.id }, s.outstanding);
    },
  });

  if (deps.scaling) registerScalingMetrics(registry, deps.scaling);
  registerPrefixMetrics(registry, () => deps.pool.prefixStats?.());

  return {
    registry,
    /** Records one upstream request's outcome (wrap the pool's release with it). */
    observe(state: InstanceState, outcome: Outcome, model?: string) {
      const pool = model ?? state.instance.models[0] ?? 'unknown';
      const result = outcome.ok ? 'ok' : outcome.timeout ? 'timeout' : 'error';
      // One labelled child per series, kept: this runs once per request.
      const key = `${state.instance.id}\u0000${pool}\u0000${result}`;
      let child = children.get(key);
      if (!child) {
        if (children.size >= MAX_CHILDREN) children.clear();
        children.set(key, (child = latency.labels({ instance: state.instance.id, pool, outcome: result })));
      }
      child.observe(outcome.durationMs / 1000);
    },
    text: () => registry.metrics(),
    contentType: registry.contentType,
  };
}

export type BalancerMetrics = ReturnType<typeof createBalancerMetrics>;

/**
 * The scaling signals, one gauge each, labelled by pool (model): what KEDA's
 * Prometheus scaler or an HPA on external metrics reads (infra/autoscaling/).
 */
function registerScalingMetrics(registry: Registry, figures: () => PoolFigures[]): void {
  const gauges: [keyof PoolFigures, string, string][] = [
    ['desired', 'arus_balancer_pool_desired_instances', 'Instances that keep the pool\'s expected queueing under its target (autoscale settings), within min and max'],
    ['current', 'arus_balancer_pool_current_instances', 'Instances of the pool that exist: warming, serving and draining'],
    ['warming', 'arus_balancer_pool_warming_instances', 'Instances of the pool not ready yet since they joined (model loading)'],
    ['draining', 'arus_balancer_pool_draining_instances', 'Instances of the pool draining: no new requests, those in flight finishing'],
  ];
  for (const [field, name, help] of gauges)
    new Gauge({
      name,
      help,
      labelNames: ['model'],
      registers: [registry],
      collect() {
        this.reset();
        for (const f of figures()) this.set({ model: f.model }, f[field] as number);
      },
    });
}
