// Retries: which upstream failures may be tried again on another instance,
// and the budget that keeps retries from multiplying a failing region's load.
import type { InstanceState } from '../types.js';
import type { Dispatch } from './dispatch.js';
import type { ForwardRequest } from './request.js';

export type RetryBudgetOptions = {
  /** Retries allowed as a share of requests over the last 10 s. */
  ratio: number;
  /** Retries always allowed per second, so a quiet balancer can still retry. */
  minPerSecond: number;
};

export interface RetryBudget {
  /** One more request admitted. */
  deposit(): void;
  /** Takes one retry from the budget; false when it is spent. */
  tryWithdraw(): boolean;
}

export interface Retries {
  /** A retry is possible only while nothing has reached the client and another instance has room. */
  mayRetry(t: ForwardRequest, tried: readonly string[]): boolean;
  /** The instance for the next attempt, once `mayRetry` said yes (counted as a retry). */
  next(t: ForwardRequest, tried: readonly string[]): InstanceState | undefined;
}

const RETRYABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** A refused, reset or timed-out connection: the instance did not run the request. */
export const isRetryable = (code: string) => RETRYABLE_CODES.has(code);
export const isTimeout = (code: string) => TIMEOUT_CODES.has(code);

/** An undici or socket error's code, or ''. */
export function errCode(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null;
  const code = e?.code ?? e?.cause?.code;
  return typeof code === 'string' || typeof code === 'number' ? String(code) : '';
}

export function createRetries(deps: { dispatch: Pick<Dispatch, 'take' | 'hasRoom'>; budget: RetryBudget; counters: { retries: number; retriesDenied: number } }): Retries {
  const { dispatch, budget, counters } = deps;
  return {
    mayRetry(t, tried) {
      if (!dispatch.hasRoom(t.model, t.kind, tried)) return false;
      if (budget.tryWithdraw()) return true;
      counters.retriesDenied++;
      return false;
    },
    next(t, tried) {
      counters.retries++;
      return dispatch.take(t.model, t.kind, tried, t.tokens, t.prompt);
    },
  };
}

/**
 * Finagle-style retry budget: retries in the last 10 s may not pass
 * `ratio` × requests plus `minPerSecond` × 10, so a failing region cannot
 * multiply its own load.
 */
export function createRetryBudget(opts: RetryBudgetOptions & { now?: () => number; windowS?: number }): RetryBudget {
  const now = opts.now ?? Date.now;
  const windowS = opts.windowS ?? 10;
  const buckets = Array.from({ length: windowS }, () => ({ sec: -1, requests: 0, retries: 0 }));
  const bucket = () => {
    const sec = Math.floor(now() / 1000);
    const b = buckets[sec % windowS];
    if (b.sec !== sec) Object.assign(b, { sec, requests: 0, retries: 0 });
    return b;
  };
  const totals = () => {
    const sec = Math.floor(now() / 1000);
    let requests = 0;
    let retries = 0;
    for (const b of buckets)
      if (b.sec > sec - windowS) {
        requests += b.requests;
        retries += b.retries;
      }
    return { requests, retries };
  };
  return {
    deposit() {
      bucket().requests++;
    },
    tryWithdraw(): boolean {
      const { requests, retries } = totals();
      if (retries + 1 > opts.ratio * requests + opts.minPerSecond * windowS) return false;
      bucket().retries++;
      return true;
    },
  };
}
