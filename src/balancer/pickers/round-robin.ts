// Equal turns in a fixed cycle; weights only drain (0) or ramp (slow start).
import type { InstanceState, PickContext, Picker } from '../types.js';
import { cycleKey, DEFAULT_SLOW_START_MS, slowStartFactor, windowOf } from './weight.js';

export type RoundRobinOptions = { slowStartMs?: number };

const MAX_CYCLES = 1024;

export function roundRobin(opts: RoundRobinOptions = {}): Picker {
  const cursors = new Map<string, number>();
  return {
    name: 'round-robin',
    pick(candidates: readonly InstanceState[], ctx: PickContext) {
      const live = candidates.filter((c) => c.instance.weight > 0);
      if (live.length === 0) return undefined;
      const key = cycleKey(ctx);
      const start = (cursors.get(key) ?? 0) % live.length;
      const window = windowOf(ctx, opts.slowStartMs ?? DEFAULT_SLOW_START_MS);
      // A warming instance keeps its turn only with probability = its ramp factor.
      let chosen = start;
      for (let k = 0; k < live.length; k++) {
        const i = (start + k) % live.length;
        const f = slowStartFactor(live[i], ctx.now, window);
        if (f >= 1 || ctx.random() < f) {
          chosen = i;
          break;
        }
      }
      if (!cursors.has(key) && cursors.size >= MAX_CYCLES) cursors.clear();
      cursors.set(key, (chosen + 1) % live.length);
      return live[chosen];
    },
  };
}
