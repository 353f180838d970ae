// Smooth weighted round-robin (nginx): exact shares, spread out, no bursts.
import type { InstanceState, PickContext, Picker } from '../types.js';
import { cycleKey, DEFAULT_SLOW_START_MS, weighted as live } from './weight.js';

export type WeightedOptions = { slowStartMs?: number };

const MAX_CYCLES = 1024;

export function weighted(opts: WeightedOptions = {}): Picker {
  // Per request shape: instance id → its running "current weight".
  const cycles = new Map<string, Map<string, number>>();
  return {
    name: 'weighted',
    pick(candidates: readonly InstanceState[], ctx: PickContext) {
      const items = live(candidates, ctx, opts.slowStartMs ?? DEFAULT_SLOW_START_MS);
      if (items.length === 0) return undefined;
      const key = cycleKey(ctx);
      // A changed set of instances starts a fresh cycle: leftovers of a departed
      // instance's turn would otherwise skew the shares of the rest.
      const prev = cycles.get(key);
      const same = prev !== undefined && prev.size === items.length && items.every((i) => prev.has(i.state.instance.id));
      const old = same ? prev : new Map<string, number>();
      const current = new Map<string, number>();
      let total = 0;
      let best: (typeof items)[number] | undefined;
      let bestCurrent = -Infinity;
      for (const item of items) {
        const id = item.state.instance.id;
        const c = (old.get(id) ?? 0) + item.weight;
        current.set(id, c);
        total += item.weight;
        if (c > bestCurrent) {
          bestCurrent = c;
          best = item;
        }
      }
      current.set(best!.state.instance.id, bestCurrent - total);
      if (!cycles.has(key) && cycles.size >= MAX_CYCLES) cycles.clear();
      cycles.set(key, current);
      return best!.state;
    },
  };
}
