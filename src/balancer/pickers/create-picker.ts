// One name per strategy, as written in a region's document.
import type { Picker, Strategy } from '../types.js';
import { gpu, type GpuOptions } from './gpu.js';
import { latency } from './latency.js';
import { leastOutstanding } from './least-outstanding.js';
import { prefix, type PrefixOptions } from './prefix.js';
import { roundRobin } from './round-robin.js';
import { weighted } from './weighted.js';

export type PickerOptions = GpuOptions & PrefixOptions;

export const STRATEGIES: readonly Strategy[] = ['round-robin', 'weighted', 'least-outstanding', 'latency', 'gpu', 'prefix'];

export function createPicker(strategy: Strategy, opts: PickerOptions = {}): Picker {
  switch (strategy) {
    case 'round-robin':
      return roundRobin(opts);
    case 'weighted':
      return weighted(opts);
    case 'least-outstanding':
      return leastOutstanding(opts);
    case 'latency':
      return latency(opts);
    case 'gpu':
      return gpu(opts);
    case 'prefix':
      return prefix(opts);
    default:
      throw new Error(`unknown balancer strategy: ${String(strategy satisfies never)}`);
  }
}

/** The picker a balancer document names, with its strategy's settings. */
export function pickerOf(doc: { strategy: Strategy; prefix?: { prefillTokensPerSecond: number; indexMiB: number } }): Picker {
  return createPicker(doc.strategy, doc.prefix ? { prefillTokensPerSecond: doc.prefix.prefillTokensPerSecond, indexBytes: doc.prefix.indexMiB * 2 ** 20 } : {});
}
