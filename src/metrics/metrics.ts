import type { MiddlewareHandler } from 'hono';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Responder } from '../dns/responder.js';
import type { DnsServerStats } from '../dns/server.js';
import { registerApiMetrics } from './api-metrics.js';
import { registerControlMetrics, type RegionState } from './control-metrics.js';
import { registerDnsMetrics, registerDnsServerMetrics } from './dns-metrics.js';

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
  /** Reads this DNS server's counters (UDP/TCP messages, TCP connections open, evicted, refused, pipelined, closed) at every scrape, added to the others'. */
  observeDnsServer(stats: DnsServerStats): void;
  /** Counts an events-table row by kind; `failover` and `failback` also count as failovers. */
  recordEvent(kind: string): void;
  /** Counts a request refused for speaking for another identity than its credential's. */
  recordIdentityRefused(role: string, binding: string): void;
  /** Counts one probe report's results, by the reporting agent's region and outcome. */
  recordProbeResults(results: readonly { ok: boolean; endpoint: string }[], agentRegion: string): void;
  /**
   * Reads each region's state (up, degraded, down) at every scrape, for
   * `arus_region_state{region,state}` (1 for the region's state, 0 for the others).
   */
  observeRegions(read: () => Iterable<[region: string, state: RegionState]>): void;
  /** Hono middleware: API requests by method, route pattern and status, and their duration. */
  readonly apiMiddleware: MiddlewareHandler;
  /** Runs before every scrape (`text()`): a reader that must fetch what it exposes first (DNS worker threads' counters). */
  beforeScrape(fn: () => Promise<void>): void;
  /** The Prometheus text exposition of the registry. */
  text(): Promise<string>;
  readonly contentType: string;
}

/**
 * Prometheus metrics for one process (prom-client, its own registry). DNS
 * counters are not touched per query: the responders count in plain integers
 * and the collectors read them at scrape time.
 */
export function createMetrics(opts: MetricsOptions = {}): Metrics {
  const prefix = opts.prefix ?? 'arus_';
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  // Registered in this order, so the exposition lists DNS, then control, then the API.
  const observeResponder = registerDnsMetrics(prefix, registry);
  const observeDnsServer = registerDnsServerMetrics(prefix, registry);
  const control = registerControlMetrics(prefix, registry);
  const apiMiddleware = registerApiMetrics(prefix, registry);

  const scrapeHooks: (() => Promise<void>)[] = [];
  return {
    registry,
    observeResponder,
    observeDnsServer,
    ...control,
    apiMiddleware,
    beforeScrape: (fn) => void scrapeHooks.push(fn),
    async text() {
      await Promise.all(scrapeHooks.map((fn) => fn()));
      return registry.metrics();
    },
    contentType: registry.contentType,
  };
}
