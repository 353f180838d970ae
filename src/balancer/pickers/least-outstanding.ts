// Fewest requests in flight per unit of weight; ties drawn by weight.
import type { InstanceState, PickContext, Picker } from '../types.js';
import { DEFAULT_SLOW_START_MS, lowest, weighted } from './weight.js';

export type LeastOutstandingOptions = { slowStartMs?: number };

/**
 * Score = (outstanding + 1) / effective weight: with equal weights this is plain
 * least-outstanding; a heavier (or fully warmed) instance is allowed
 * proportionally more requests in flight.
 */
export function leastOutstanding(opts: LeastOutstandingOptions = {}): Picker {
  return {
    name: 'least-outstanding',
    pick(candidates: readonly InstanceState[], ctx: PickContext) {
      const items = weighted(candidates, ctx, opts.slowStartMs ?? DEFAULT_SLOW_START_MS);
      return lowest(items, (i) => (i.state.outstanding + 1) / i.weight, ctx.random)?.state;
    },
  };
}
