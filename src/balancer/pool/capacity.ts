// The pool's capacity as the balancer reports it to control: instances ready
// and ejected, requests outstanding, free concurrency under the cap, and the
// mean KV-cache headroom of fresh gauges.
import type { InstanceState } from '../types.js';
import { isEjected } from './outliers.js';

export function capacityOf(list: readonly InstanceState[], t: number, opts: { staleMs: number; maxConcurrency?: number }) {
  const healthy = list.filter((s) => s.ready && !s.draining && !isEjected(s, t));
  const headrooms = healthy.flatMap((s) => {
    const g = s.gpu;
    if (!g || t - g.scrapedAt > opts.staleMs) return [];
    return [g.memoryExhausted ? 0 : Math.min(1, Math.max(0, 1 - g.kvCacheUsage))];
  });
  const max = opts.maxConcurrency;
  return {
    instances: list.length,
    ready: healthy.length,
    ejected: list.filter((s) => isEjected(s, t)).length,
    outstanding: list.reduce((n, s) => n + s.outstanding, 0),
    freeConcurrency: max === undefined ? undefined : healthy.reduce((n, s) => n + Math.max(0, max - s.outstanding), 0),
    kvHeadroom: headrooms.length ? headrooms.reduce((a, b) => a + b, 0) / headrooms.length : undefined,
  };
}
