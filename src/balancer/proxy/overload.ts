// Overload: what a request meets when its model's pool cannot take it now —
// a place in the bounded wait queue, the configured fallback model's pool
// (no live instance, the queue full or past its deadline), or a 503 with
// Retry-After.
import type { Pool } from '../pool.js';
import { createWaitQueue, type OverloadedError, type WaitQueue } from '../queue.js';
import { isLive } from './dispatch.js';
import { HttpError } from './errors.js';
import type { ForwardRequest } from './request.js';

export type OverloadOptions = {
  pool: Pick<Pool, 'eligible'>;
  now: () => number;
  maxQueue: number;
  queueTimeoutMs: number;
  /** Degrade-to models: `{ [model]: fallbackModel }`. */
  fallbacks: Record<string, string>;
  counters: { overloaded: number; fallbacks: number };
};

export interface Overload {
  /** Requests waiting for a free instance, region-wide. */
  readonly queue: WaitQueue;
  /** The request rewritten for `r.model`'s fallback model, if one is configured and has a live instance. */
  fallbackFor(r: ForwardRequest): ForwardRequest | undefined;
  /** Where a request the queue turned away may go (`target`: where it was sent): its fallback, once. */
  overflowFor(r: ForwardRequest, target: ForwardRequest): ForwardRequest | undefined;
  /** The 503 for a request the queue turned away, with its Retry-After. */
  refuse(err: OverloadedError): HttpError;
  /** A request served by its fallback: counted, and the `x-arus-fallback` header that says so. */
  served(r: ForwardRequest, target: ForwardRequest): string;
  /** New fallbacks and queue limits from a changed configuration. */
  configure(o: Pick<OverloadOptions, 'maxQueue' | 'queueTimeoutMs' | 'fallbacks'>): void;
}

export function createOverload(opts: OverloadOptions): Overload {
  const { pool, now, counters } = opts;
  let fallbacks = opts.fallbacks;
  const queue = createWaitQueue({ maxQueue: opts.maxQueue, queueTimeoutMs: opts.queueTimeoutMs });

  function fallbackFor(r: ForwardRequest): ForwardRequest | undefined {
    const to = fallbacks[r.model];
    if (!to || to === r.model) return undefined;
    const t = now();
    if (!pool.eligible({ model: to, kind: r.kind }).some((s) => isLive(s, t))) return undefined;
    const parsed = JSON.parse(r.body.toString('utf8')) as Record<string, unknown>;
    return { ...r, model: to, body: Buffer.from(JSON.stringify({ ...parsed, model: to })) };
  }

  return {
    queue,
    fallbackFor,
    // One hop: a request already on its fallback is not moved again.
    overflowFor: (r, target) => (target === r ? fallbackFor(r) : undefined),
    refuse(err) {
      counters.overloaded++;
      return new HttpError(503, err.message, 'overloaded', { 'retry-after': String(err.retryAfterS) });
    },
    served(r, target) {
      counters.fallbacks++;
      return `${r.model} -> ${target.model}`;
    },
    configure(o) {
      fallbacks = o.fallbacks;
      queue.setLimits({ maxQueue: o.maxQueue, queueTimeoutMs: o.queueTimeoutMs });
    },
  };
}
