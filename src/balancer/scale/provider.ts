// What adds and removes a pool's instances. Two kinds: a provider that runs
// instances itself and hands them to the pool (local: `arus sim` processes),
// and one that only says how many are wanted, to a system that adds them to
// the balancer's configuration itself (webhook).
import type { Instance } from '../types.js';

/** The pool's figures, as a provider is told them. */
export type PoolScaling = {
  region: string;
  model: string;
  desired: number;
  /** Every instance of the pool that exists, draining ones included. */
  current: number;
  warming: number;
  draining: number;
  /** Why `desired` is what it is. */
  reason: string;
};

export interface ScaleProvider {
  readonly kind: 'local' | 'webhook';
  /**
   * Starts one instance and resolves once it listens (its model may still be
   * loading: the readiness checks say when it takes traffic). Undefined for a
   * provider that does not run instances itself.
   */
  launch?(model: string): Promise<Instance>;
  /** Stops an instance `launch` gave, once drained. */
  stop?(instance: Instance): Promise<void>;
  /**
   * Tells the operator's system the pool's figures, and the instances drained
   * for it to remove; resolves once delivered, rejects once every retry failed.
   */
  announce?(figures: PoolScaling, drained: readonly Instance[]): Promise<void>;
  /** Stops whatever the provider runs (the balancer is stopping). */
  close(): Promise<void>;
}
