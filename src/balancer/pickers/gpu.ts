// Prefer the instance with the most KV-cache and queue headroom, from its scraped gauges.
import type { InstanceState, PickContext, Picker } from '../types.js';
import { DEFAULT_SLOW_START_MS, lowest, weighted } from './weight.js';

export type GpuOptions = {
  slowStartMs?: number;
  /** Gauges older than this (or never scraped) count as saturated. Default 5 s. */
  staleMs?: number;
  /** KV-cache usage at or above this counts as full. Default 0.98. */
  kvFull?: number;
};

export const DEFAULT_GPU_STALE_MS = 5_000;

/** Fresh gauges with free KV cache; undefined when the instance counts as saturated. */
export function freshGauges(s: InstanceState, now: number, staleMs = DEFAULT_GPU_STALE_MS, kvFull = 0.98) {
  const g = s.gpu;
  if (!g || g.memoryExhausted || now - g.scrapedAt > staleMs) return undefined;
  if (!(g.kvCacheUsage < kvFull)) return undefined;
  return g;
}

/**
 * Headroom score, higher is better:
 *   weight × (1 − kvCacheUsage) / ((1 + load) × (1 + waiting))
 * where load = max(running + waiting, outstanding). `outstanding` is this
 * balancer's live count, so requests sent since the last scrape still count
 * and one good scrape does not draw a herd. `waiting` is penalised twice: a
 * queue means the batch is already full.
 *
 * Tiers: instances reporting memory exhaustion are never picked; instances
 * with fresh, non-full gauges are ranked by score (near-equal scores fall back
 * to least outstanding); only when none has headroom do saturated ones (stale,
 * unscraped, full KV) take traffic, by least outstanding.
 */
export function gpu(opts: GpuOptions = {}): Picker {
  const staleMs = opts.staleMs ?? DEFAULT_GPU_STALE_MS;
  const kvFull = opts.kvFull ?? 0.98;
  return {
    name: 'gpu',
    pick(candidates: readonly InstanceState[], ctx: PickContext) {
      const items = weighted(candidates, ctx, opts.slowStartMs ?? DEFAULT_SLOW_START_MS).filter((i) => !i.state.gpu?.memoryExhausted);
      const byOutstanding = (i: (typeof items)[number]) => (i.state.outstanding + 1) / i.weight;
      const fresh = items.flatMap((i) => {
        const g = freshGauges(i.state, ctx.now, staleMs, kvFull);
        if (!g) return [];
        const load = Math.max(g.running + g.waiting, i.state.outstanding);
        const score = (i.weight * (1 - Math.max(0, g.kvCacheUsage))) / ((1 + load) * (1 + Math.max(0, g.waiting)));
        return [{ ...i, score }];
      });
      if (fresh.length === 0) return lowest(items, byOutstanding, ctx.random)?.state;
      const best = Math.max(...fresh.map((f) => f.score));
      // "Equal" within 2 %: scrape noise should not decide alone.
      const top = fresh.filter((f) => f.score >= best * 0.98);
      return lowest(top, byOutstanding, ctx.random)?.state;
    },
  };
}
