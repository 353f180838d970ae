// Test helper: the ConfigError a call throws.
import { expect } from 'vitest';
import { ConfigError } from './load.js';

export function thrownConfigError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}
