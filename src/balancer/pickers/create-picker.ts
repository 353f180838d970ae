// One name per strategy, as written in a region's document.
import type { Picker, Strategy } from '../types.js';
import { gpu, type GpuOptions } from './gpu.js';
import { latency } from './latency.js';
import { leastOutstanding } from './least-outstanding.js';
import { roundRobin } from './round-robin.js';
import { weighted } from './weighted.js';

export type PickerOptions = GpuOptions;

export const STRATEGIES: readonly Strategy[] = ['round-robin', 'weighted', 'least-outstanding', 'latency', 'gpu'];

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
    default:
      throw new Error(`unknown balancer strategy: ${String(strategy satisfies never)}`);
  }
}
