// Dispatch: admission (which model's pool a request goes to), the instance
// with room that takes it, and the keep-alive connection pool to each
// instance that carries it.
import { Pool as UpstreamPool } from 'undici';
import type { Pool } from '../pool.js';
import type { InstanceState, PromptKey, RequestKind } from '../types.js';
import { HttpError } from './errors.js';
import type { ForwardRequest } from './request.js';

export type DispatchOptions = {
  pool: Pick<Pool, 'states' | 'eligible' | 'pick'>;
  /** Requests in flight to one instance. */
  cap: number;
  now: () => number;
  upstream: UpstreamPool.Options;
  /** The request rewritten for its model's fallback, when that has a live instance (overload.ts). */
  fallbackFor: (r: ForwardRequest) => ForwardRequest | undefined;
  /** Every admitted request counts toward the retry budget (retries.ts). */
  budget: { deposit(): void };
};

export interface Dispatch {
  /**
   * The request as it will be sent: `r`, or its fallback when no instance of
   * its model is live; else the 404 or 503 to answer.
   */
  admit(r: ForwardRequest): ForwardRequest | HttpError;
  /**
   * The picker's choice when it has room and was not tried already; else the
   * least loaded live instance that has room. Undefined: wait (or give up).
   */
  take(model: string | undefined, kind: RequestKind, tried: readonly string[], tokens?: number, prompt?: PromptKey): InstanceState | undefined;
  /** Whether a live instance not tried yet has room for another attempt. */
  hasRoom(model: string, kind: RequestKind, tried: readonly string[]): boolean;
  /** The connection pool to an instance. */
  upstream(origin: string): UpstreamPool;
  /** A new per-instance cap, for the requests admitted from now on. */
  setCap(cap: number): void;
  /** Closes the connection pools of instances no longer configured; their requests in flight finish first. */
  prune(): void;
  close(): Promise<void>;
}

export const isLive = (s: InstanceState, t: number) => s.ready && !s.draining && !(s.ejectedUntil !== undefined && s.ejectedUntil > t);

const serves = (s: InstanceState, model?: string, kind?: RequestKind) =>
  (model === undefined || s.instance.models.includes(model)) && (kind === undefined || s.instance.kinds.includes(kind));

export function createDispatch(opts: DispatchOptions): Dispatch {
  const { pool, now } = opts;
  let cap = opts.cap;
  // One keep-alive connection pool per instance URL, looked up directly (no agent, no interceptors on the hot path).
  const upstreams = new Map<string, UpstreamPool>();

  /** Closes the pools of instances no longer configured (their requests in flight finish first). */
  function prune(): void {
    const live = new Set(pool.states().map((s) => s.instance.url));
    for (const [origin, p] of upstreams)
      if (!live.has(origin)) {
        upstreams.delete(origin);
        void p.close().catch(() => {});
      }
  }

  return {
    admit(r) {
      const all = pool.eligible({ model: r.model, kind: r.kind });
      if (all.length === 0) return new HttpError(404, `The model \`${r.model}\` does not exist or does not serve ${r.kind} requests.`, 'model_not_found');
      let target = r;
      if (!all.some((s) => isLive(s, now()))) {
        const f = opts.fallbackFor(r);
        if (!f) return new HttpError(503, `no ready instance serves \`${r.model}\``, 'no_ready_instance', { 'retry-after': '1' });
        target = f;
      }
      opts.budget.deposit();
      return target;
    },
    take(model, kind, tried, tokens, prompt) {
      const t = now();
      let best: InstanceState | undefined;
      for (const c of pool.states())
        if (c.outstanding < cap && isLive(c, t) && serves(c, model, kind) && !tried.includes(c.instance.id))
          if (!best || c.outstanding < best.outstanding) best = c;
      // Every instance full (the usual state of a queued request woken by a release elsewhere): no pick.
      if (!best) return undefined;
      const s = pool.pick({ model, kind, tokens, prompt });
      return s && s.outstanding < cap && !tried.includes(s.instance.id) ? s : best;
    },
    hasRoom(model, kind, tried) {
      const t = now();
      return pool.states().some((c) => isLive(c, t) && serves(c, model, kind) && c.outstanding < cap && !tried.includes(c.instance.id));
    },
    upstream(origin) {
      let p = upstreams.get(origin);
      if (!p) {
        if (upstreams.size >= 2 * pool.states().length + 8) prune();
        upstreams.set(origin, (p = new UpstreamPool(origin, opts.upstream)));
      }
      return p;
    },
    setCap(next) {
      cap = next;
    },
    prune,
    close: async () => void (await Promise.all([...upstreams.values()].map((p) => p.close()))),
  };
}
