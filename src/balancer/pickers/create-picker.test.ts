import { describe, expect, it } from 'vitest';
import type { Strategy } from '../types.js';
import { createPicker, STRATEGIES } from './create-picker.js';

describe('createPicker', () => {
  it('makes the picker named by each strategy', () => {
    expect(STRATEGIES.map((s) => createPicker(s).name)).toEqual(['round-robin', 'weighted', 'least-outstanding', 'latency', 'gpu', 'prefix']);
  });

  it('refuses an unknown strategy', () => {
    expect(() => createPicker('random' as Strategy)).toThrow(/unknown balancer strategy/);
  });
});
