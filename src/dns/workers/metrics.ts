// The DNS workers' counters in the main thread's /metrics: fetched from every
// worker at each scrape, summed into the same series a single responder
// exposes, plus each worker's own queries and snapshot version.
import { Gauge } from 'prom-client';
import type { Metrics } from '../../metrics/metrics.js';
import type { Responder } from '../responder.js';
import { createResponderStats } from '../responder-stats.js';
import { createDnsServerStats, type DnsServerStats } from '../server.js';
import type { DnsWorkers, PoolStats } from './pool.js';
import { copyStats } from './sum.js';

export function observeWorkers(metrics: Metrics, pool: DnsWorkers, prefix = 'arus_'): { server: DnsServerStats } {
  const mirror = createResponderStats();
  const server = createDnsServerStats();
  let last: PoolStats['workers'] = [];
  metrics.observeResponder({ stats: mirror } as unknown as Responder);
  metrics.beforeScrape(async () => {
    const s = await pool.stats();
    copyStats(mirror, s.responder);
    // Counters never go down (a worker that missed this reading keeps its last count in); the open-connections gauge is as read.
    const into = server as unknown as Record<string, number>;
    for (const [k, v] of Object.entries(s.server)) into[k] = k === 'tcpOpen' || s.workers.length === pool.size ? v : Math.max(v, into[k] ?? 0);
    last = s.workers;
  });
  new Gauge({
    name: `${prefix}dns_worker_queries`,
    help: 'Queries each DNS worker thread has read since it started',
    labelNames: ['worker'],
    registers: [metrics.registry],
    collect() {
      this.reset();
      for (const w of last) this.set({ worker: String(w.index) }, w.queries);
    },
  });
  new Gauge({
    name: `${prefix}dns_worker_snapshot_version`,
    help: 'The snapshot version each DNS worker thread answers from',
    labelNames: ['worker'],
    registers: [metrics.registry],
    collect() {
      this.reset();
      pool.versions().forEach((v, i) => this.set({ worker: String(i) }, v));
    },
  });
  new Gauge({
    name: `${prefix}dns_worker_heap_bytes`,
    help: "Each DNS worker thread's V8 heap: used, total (reserved) and external (buffers its objects hold)",
    labelNames: ['worker', 'kind'],
    registers: [metrics.registry],
    collect() {
      this.reset();
      for (const w of last) for (const kind of ['used', 'total', 'external'] as const) this.set({ worker: String(w.index), kind }, w.heap[kind]);
    },
  });
  new Gauge({ name: `${prefix}dns_workers`, help: 'DNS worker threads answering', registers: [metrics.registry], collect() { this.set(pool.size); } });
  return { server };
}
