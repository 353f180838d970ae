// Power of two choices on expected wait: EWMA response time (per kind, per unit) × (outstanding + 1).
import { workClass, type InstanceState, type PickContext, type Picker } from '../types.js';
import { DEFAULT_SLOW_START_MS, drawWeighted, weighted } from './weight.js';

export type LatencyOptions = { slowStartMs?: number };

/**
 * Two candidates are drawn by effective weight (so slow start and weights
 * still shape the share), and the one with the lower cost wins. Drawing two
 * rather than scanning all keeps a fast instance from taking every request
 * between two EWMA updates.
 *
 * An instance with no EWMA yet is assumed as fast as the fastest measured one:
 * optimistic, so it gets tried, but bounded — its cost still grows with its
 * own outstanding requests, so it cannot swallow the traffic before its first
 * response is measured.
 */
export function latency(opts: LatencyOptions = {}): Picker {
  return {
    name: 'latency',
    pick(candidates: readonly InstanceState[], ctx: PickContext) {
      const items = weighted(candidates, ctx, opts.slowStartMs ?? DEFAULT_SLOW_START_MS);
      if (items.length <= 1) return items[0]?.state;
      // Per work class and per unit (ms per token, ms per embeddings call) when every measured
      // candidate has it, so a quick embeddings call does not make a slow generator look fast.
      const cls = workClass(ctx.kind);
      const perUnit = items.every((i) => i.state.unitEwma?.[cls] !== undefined || i.state.ewmaMs === undefined);
      const ewma = (s: InstanceState) => (perUnit ? s.unitEwma?.[cls] : s.ewmaMs);
      const known = items.map((i) => ewma(i.state)).filter((e): e is number => e !== undefined && e >= 0);
      const optimistic = known.length > 0 ? Math.max(Math.min(...known), 1e-3) : 1;
      const cost = (s: InstanceState) => Math.max(ewma(s) ?? optimistic, 1e-3) * (s.outstanding + 1);
      const a = drawWeighted(items, ctx.random)!;
      const b = drawWeighted(
        items.filter((i) => i !== a),
        ctx.random,
      )!;
      return cost(b.state) < cost(a.state) ? b.state : a.state;
    },
  };
}
