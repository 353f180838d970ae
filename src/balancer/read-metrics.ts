// Prometheus series read at scrape time from counters the balancer keeps
// itself (the proxy's stats, the prefix strategy's): nothing is counted twice.
import { Counter, Gauge, type Registry } from 'prom-client';

/** A counter whose value is `read()` at each scrape (0 when undefined). */
export function readCounter(registry: Registry, name: string, help: string, read: () => number | undefined): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read() ?? 0);
    },
  });
}

/** A gauge set to `read()` at each scrape (0 when undefined). */
export function readGauge(registry: Registry, name: string, help: string, read: () => number | undefined): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read() ?? 0);
    },
  });
}
