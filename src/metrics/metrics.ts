import type { MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';
import { DECISION_BUCKETS, QTYPE_LABELS, type Responder, type ResponderStats } from '../dns/responder.js';

export type MetricsOptions = {
  /** Prefix of every Arus metric. Default `arus_`. */
  prefix?: string;
  /** prom-client's default process and Node.js metrics (`process_*`, `nodejs_*`, unprefixed) on the same registry. Default true. */
  defaultMetrics?: boolean;
};

export interface Metrics {
  readonly registry: Registry;
  /** Reads this responder's counters at every scrape (added to those of the others observed). */
  observeResponder(responder: Responder): void;
  /** Counts an events-table row by kind; `failover` and `failback` also count as failovers. */
  recordEvent(kind: string): void;
  /** Counts one probe report's results, by the reporting agent's region and outcome. */
  recordProbeResults(results: readonly { ok: boolean; endpoint: string }[], agentRegion: string): void;
  /**
   * Reads each region's state (up, degraded, down) at every scrape, for
   * `arus_region_state{region,state}` (1 for the region's state, 0 for the others).
   */
  observeRegions(read: () => Iterable<[region: string, state: RegionState]>): void;
  /** Hono middleware: API requests by method, route pattern and status, and their duration. */
  readonly apiMiddleware: MiddlewareHandler;
  /** The Prometheus text exposition of the registry. */
  text(): Promise<string>;
  readonly contentType: string;
}

export type RegionState = 'up' | 'degraded' | 'down';
const REGION_STATES: readonly RegionState[] = ['up', 'degraded', 'down'];

/** `ResponderStats` fields by rcode label. */
const RCODES = [
  ['NOERROR', 'noerror'],
  ['FORMERR', 'formerr'],
  ['SERVFAIL', 'servfail'],
  ['NXDOMAIN', 'nxdomain'],
  ['NOTIMP', 'notimp'],
  ['REFUSED', 'refused'],
  ['BADVERS', 'badvers'],
] as const satisfies readonly (readonly [string, keyof ResponderStats])[];

const FAILOVER_KINDS = ['failover', 'failback'];
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const API_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Distinct `agent_region` labels kept; the region is the agent's word, so past this it is `other`. */
export const MAX_AGENT_REGIONS = 64;
/** The route label of a request that no route matched (404). */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * Prometheus metrics for one process (prom-client, its own registry). DNS
 * counters are not touched per query: the responders count in plain integers
 * and the collectors read them at scrape time.
 */
export function createMetrics(opts: MetricsOptions = {}): Metrics {
  const prefix = opts.prefix ?? 'arus_';
  const registry = new Registry();
  const registers = [registry];
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const responders = new Set<Responder>();
  const stats = () => [...responders].map((r) => r.stats);

  /** A counter whose values are read from the responders at scrape time. */
  function scraped<L extends string>(name: string, help: string, labelNames: readonly L[], read: (add: (labels: Record<L, string>, value: number) => void) => void) {
    const counter: Counter<L> = new Counter<L>({
      name: prefix + name,
      help,
      labelNames,
      registers,
      collect: () => {
        counter.reset();
        read((labels, value) => counter.inc(labels, value));
      },
    });
  }
  const total = (field: 'truncated' | 'dropped' | 'errors' | 'emptyAnswers' | 'rrlDropped' | 'rrlSlipped') => stats().reduce((n, s) => n + s[field], 0);

  scraped('dns_queries_total', 'DNS queries answered, by response code.', ['rcode'], (add) => {
    for (const [rcode, field] of RCODES) add({ rcode }, stats().reduce((n, s) => n + s[field], 0));
  });
  scraped('dns_queries_by_type_total', 'DNS queries whose question could be read, by QTYPE.', ['qtype'], (add) => {
    QTYPE_LABELS.forEach((qtype, i) => add({ qtype }, stats().reduce((n, s) => n + (s.byType[i] ?? 0), 0)));
  });
  scraped('dns_answers_total', 'A and AAAA answers for service names, by the region chosen to serve them.', ['region'], (add) => {
    const byRegion = new Map<string, number>();
    for (const s of stats()) s.answerRegions.forEach((region, i) => byRegion.set(region, (byRegion.get(region) ?? 0) + s.answersByRegion[i]));
    for (const [region, n] of byRegion) add({ region }, n);
  });
  scraped('dns_empty_answers_total', 'A and AAAA answers for service names with no address (no region could serve; fail-closed).', [], (add) => add({}, total('emptyAnswers')));
  scraped('dns_truncated_total', 'UDP replies sent empty with TC set (the client retries over TCP).', [], (add) => add({}, total('truncated')));
  scraped('dns_dropped_total', 'DNS messages given no reply (shorter than a header, or not a query).', [], (add) => add({}, total('dropped')));
  scraped('dns_rrl_limited_total', 'UDP replies held back by response rate limiting: dropped, or slipped (sent empty with TC set).', ['action'], (add) => {
    add({ action: 'dropped' }, total('rrlDropped'));
    add({ action: 'slipped' }, total('rrlSlipped'));
  });
  scraped('dns_errors_total', 'Exceptions while answering a DNS query (each answered SERVFAIL).', [], (add) => add({}, total('errors')));
  // A histogram prom-client does not fill itself: the responders' fixed buckets, read and summed at scrape time.
  registry.registerMetric(
    scrapedHistogram(prefix + 'dns_decision_seconds', 'Time spent in steer() deciding an answer (answer-cache misses only).', DECISION_BUCKETS, () => {
      const counts = DECISION_BUCKETS.map(() => 0).concat(0);
      let sum = 0;
      for (const s of stats()) {
        s.decisionBuckets.forEach((n, i) => (counts[i] += n));
        sum += s.decisionSeconds;
      }
      return { counts, sum };
    }),
  );

  let regionStates: (() => Iterable<[string, RegionState]>) | undefined;
  const regionState: Gauge<'region' | 'state'> = new Gauge({
    name: `${prefix}region_state`,
    help: 'Each region\'s state as control sees it now: 1 for its state (up, degraded, down), 0 for the others.',
    labelNames: ['region', 'state'],
    registers,
    collect: () => {
      regionState.reset();
      for (const [region, state] of regionStates?.() ?? []) for (const s of REGION_STATES) regionState.set({ region, state: s }, s === state ? 1 : 0);
    },
  });

  const events = new Counter({ name: `${prefix}events_total`, help: 'Rows written to the events history, by kind.', labelNames: ['kind'], registers });
  const failovers = new Counter({ name: `${prefix}failovers_total`, help: 'Clients moved away from a region (failover) or back to it (failback).', labelNames: ['kind'], registers });
  for (const kind of FAILOVER_KINDS) failovers.inc({ kind }, 0);
  const probes = new Counter({ name: `${prefix}probe_results_total`, help: 'Probe results received, by the reporting agent\'s region and outcome.', labelNames: ['agent_region', 'result'], registers });
  const agentRegions = new Set<string>();
  const requests = new Counter({ name: `${prefix}api_requests_total`, help: 'Admin API requests, by method, route pattern and status.', labelNames: ['method', 'route', 'status'], registers });
  const requestSeconds = new Histogram({
    name: `${prefix}api_request_seconds`,
    help: 'Admin API request duration until the response is ready (for streams: until they start), by method and route pattern.',
    labelNames: ['method', 'route'],
    buckets: API_BUCKETS,
    registers,
  });

  const apiMiddleware: MiddlewareHandler = async (c, next) => {
    const started = performance.now();
    let status = 500;
    try {
      await next();
      status = c.res.status;
    } finally {
      const method = HTTP_METHODS.has(c.req.method) ? c.req.method : 'other';
      const route = routeOf(matchedRoutes(c));
      requests.inc({ method, route, status: String(status) });
      requestSeconds.observe({ method, route }, (performance.now() - started) / 1000);
    }
  };

  return {
    registry,
    observeResponder: (responder) => void responders.add(responder),
    observeRegions: (read) => void (regionStates = read),
    recordEvent(kind) {
      events.inc({ kind });
      if (FAILOVER_KINDS.includes(kind)) failovers.inc({ kind });
    },
    recordProbeResults(results, agentRegion) {
      let ok = 0;
      for (const r of results) if (r.ok) ok++;
      if (!agentRegions.has(agentRegion) && agentRegions.size < MAX_AGENT_REGIONS) agentRegions.add(agentRegion);
      const region = agentRegions.has(agentRegion) ? agentRegion : 'other';
      probes.inc({ agent_region: region, result: 'ok' }, ok);
      probes.inc({ agent_region: region, result: 'fail' }, results.length - ok);
    },
    apiMiddleware,
    text: () => registry.metrics(),
    contentType: registry.contentType,
  };
}

/**
 * The pattern of the route that answers (or would have answered, had a
 * middleware such as auth not answered first), never the concrete path: one
 * series per route, not per region id. Middleware registered with `use` does
 * not count as a route.
 */
function routeOf(routes: readonly { path: string; method: string; handler: { length: number } }[]): string {
  for (let i = routes.length - 1; i >= 0; i--) {
    const r = routes[i];
    if (r.method !== 'ALL' || r.handler.length < 2) return r.path;
  }
  return UNMATCHED_ROUTE;
}

/** A histogram whose buckets (non-cumulative counts, one more than `bounds`) and sum are read at scrape time. */
function scrapedHistogram(name: string, help: string, bounds: readonly number[], read: () => { counts: number[]; sum: number }): Metric {
  const collector = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    reset() {},
    async get() {
      const { counts, sum } = read();
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      let cumulative = 0;
      bounds.forEach((le, i) => {
        cumulative += counts[i];
        values.push({ labels: { le }, value: cumulative, metricName: `${name}_bucket` });
      });
      cumulative += counts[bounds.length];
      values.push({ labels: { le: '+Inf' }, value: cumulative, metricName: `${name}_bucket` });
      values.push({ labels: {}, value: sum, metricName: `${name}_sum` });
      values.push({ labels: {}, value: cumulative, metricName: `${name}_count` });
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
  };
  // The registry only needs name, help, type, get() and reset(): the shape prom-client's own metrics have.
  return collector as unknown as Metric;
}
