// The in-region reverse proxy in front of the GPU model servers: its options
// and stats, and the front door that routes each request. The parts live in
// proxy/: dispatch (admission, instances with room, upstream pools), overload
// (queue, fallbacks, 503s), retries, outcomes, the streaming call, the
// batching path, the stale cache, headers and error answers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StaleCacheDoc } from '../config/scaling-schema.js';
import type { Logger } from '../log.js';
import type { Pool } from './pool.js';
import { createBatchPath } from './proxy/batch-path.js';
import { Call, type CallDeps } from './proxy/call.js';
import { createDispatch, isLive } from './proxy/dispatch.js';
import { failed, HttpError, sendError, sendJson } from './proxy/errors.js';
import { createOutcomes } from './proxy/outcomes.js';
import { createOverload } from './proxy/overload.js';
import type { ProxyParts } from './proxy/parts.js';
import { readBody, ROUTES } from './proxy/request.js';
import { createRetries, createRetryBudget, type RetryBudgetOptions } from './proxy/retries.js';
import { createStaleCache } from './proxy/stale-cache.js';
import type { InstanceState } from './types.js';

/** What the proxy needs of the pool. */
export type ProxyPool = Pick<Pool, 'states' | 'eligible' | 'pick' | 'acquire' | 'release'> & Partial<Pick<Pool, 'wantsPrompt'>>;

export type ProxyOptions = {
  pool: ProxyPool;
  log: Logger;
  /** Requests in flight to one instance; more wait in the queue. 16 unless set. */
  maxConcurrentPerInstance?: number;
  /** Requests waiting for a free instance; more get 503 at once. 256 unless set. */
  maxQueue?: number;
  /** How long a request may wait for a free instance before a 503. 5000 unless set. */
  queueTimeoutMs?: number;
  /** Largest request body; larger gets 413. 10 MiB unless set. */
  maxBodyBytes?: number;
  retryBudget?: RetryBudgetOptions;
  connectTimeoutMs?: number;
  /** Time to the response headers (for a stream: the first token). 30 s unless set. */
  upstreamHeadersTimeoutMs?: number;
  /** Longest silence between two body chunks; generations run for minutes. 600 s unless set. */
  upstreamBodyTimeoutMs?: number;
  /**
   * Micro-batching, off unless set: concurrent `/v1/embeddings` calls for the
   * same model and options within `windowMs` (5) are sent as one call of up
   * to `maxBatch` (32) inputs and the answer is split back to each caller.
   */
  batching?: { embeddings?: { windowMs?: number; maxBatch?: number } };
  /**
   * Degrade-to models: when no instance of a model is ready, or its pool is
   * full, the request goes to this model's pool (body `model` rewritten) and
   * the answer says so in `x-arus-fallback: <requested> -> <served>`.
   */
  fallbacks?: Record<string, string>;
  /** Per model, off unless set: answers of deterministic requests kept and served, marked `x-arus-cache: stale`, when no instance can serve (proxy/stale-cache.ts). */
  staleCache?: Record<string, StaleCacheDoc>;
  now?: () => number;
};

export type InstanceStats = { outstanding: number; requests: number; failures: number; latencyMs: number[] };

export type ProxyStats = {
  requests: number;
  retries: number;
  /** Retries wanted but refused by the budget. */
  retriesDenied: number;
  /** 503s for a full queue or a queue deadline. */
  overloaded: number;
  queueDepth: number;
  /** Ejections in force now, summed over instances (pool state). */
  ejections: number;
  instances: Record<string, InstanceStats>;
  /** Requests served by a fallback model. */
  fallbacks?: number;
  /** Upstream embeddings calls sent by the batcher, and the client calls they carried. */
  batches?: number;
  batchedCalls?: number;
  /** With a stale cache configured (or once it was): requests answered from it, and cacheable ones it had nothing for (they got the 503). */
  staleServed?: number;
  staleMisses?: number;
};

/** What a changed configuration may set on a running proxy; requests under way keep what they started with. */
export type ProxySettings = Required<Pick<ProxyOptions, 'maxConcurrentPerInstance' | 'maxQueue' | 'queueTimeoutMs'>> & Pick<ProxyOptions, 'batching' | 'fallbacks' | 'staleCache'>;

export interface Proxy {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Capacity may have appeared (an instance became ready): serve queued requests. */
  wake(): void;
  /** Requests waiting in the queue whose key starts with `prefix` (a model's: `<model>|`). */
  queued(prefix: string): number;
  /**
   * New limits, fallbacks and batching; instances removed from the pool get
   * their connection pools closed once their requests in flight are done.
   */
  configure(o: ProxySettings): void;
  stats(): ProxyStats;
  /** Closes the upstream connection pools. */
  close(): Promise<void>;
}

type Counters = Pick<ProxyStats, 'requests' | 'retries' | 'retriesDenied' | 'overloaded'> & { fallbacks: number };

const RESOLVED = Promise.resolve();

export function createProxy(opts: ProxyOptions): Proxy {
  const { pool } = opts;
  const log = opts.log.child({ component: 'balancer-proxy' });
  const maxBody = opts.maxBodyBytes ?? 10 * 1024 * 1024;
  const now = opts.now ?? Date.now;
  const counters: Counters = { requests: 0, retries: 0, retriesDenied: 0, overloaded: 0, fallbacks: 0 };
  const deps = assemble(opts, log, now, counters);
  const { overload, dispatch } = deps;
  /** Batches sent by batchers replaced by a configuration change, so the counts only grow. */
  const retired = { batches: 0, calls: 0 };
  let batching = JSON.stringify(opts.batching?.embeddings ?? null);

  function route(req: IncomingMessage, res: ServerResponse): void {
    counters.requests++;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const kind = ROUTES[path];
    if (req.method === 'GET' && path === '/v1/models') return sendJson(res, 200, modelList(pool.states()));
    if (req.method === 'GET' && path === '/health') {
      const up = pool.states().some((s) => isLive(s, now()));
      return up ? sendJson(res, 200, { status: 'ok' }) : sendError(res, new HttpError(503, 'no ready instance', 'no_ready_instance', { 'retry-after': '1' }));
    }
    if (!kind) return sendError(res, new HttpError(Object.keys(ROUTES).includes(path) ? 405 : 404, `no route ${req.method} ${path}`, 'not_found'));
    if (req.method !== 'POST') return sendError(res, new HttpError(405, `method ${req.method} not allowed on ${path}`, 'method_not_allowed'));
    const call = new Call(deps, req, res, kind, url);
    res.on('close', () => call.clientClosed());
    readBody(req, maxBody, (err, body) => {
      if (err) return call.fail(err);
      // Callbacks from here on run under the request's events: a throw must become an answer, not an uncaught exception.
      try {
        call.received(body!);
      } catch (e) {
        call.fail(e);
      }
    });
  }

  return {
    // Callbacks all the way (call.ts): the promise is one resolved constant.
    handle(req, res) {
      try {
        route(req, res);
      } catch (err) {
        failed(res, err, false, log);
      }
      return RESOLVED;
    },
    wake: () => overload.queue.wake(),
    queued: (prefix) => overload.queue.count(prefix),
    configure(o) {
      dispatch.setCap(o.maxConcurrentPerInstance);
      overload.configure({ maxQueue: o.maxQueue, queueTimeoutMs: o.queueTimeoutMs, fallbacks: o.fallbacks ?? {} });
      const next = JSON.stringify(o.batching?.embeddings ?? null);
      if (next !== batching) {
        // Calls already waiting in the old batcher go out with it, at the end of their window.
        const old = deps.batch?.stats();
        if (old) [retired.batches, retired.calls] = [retired.batches + old.batches, retired.calls + old.calls];
        deps.batch = batchPathFor(deps, o.batching);
        batching = next;
      }
      deps.stale.configure(o.staleCache ?? {});
      dispatch.prune();
      overload.queue.wake();
    },
    stats() {
      const states = pool.states();
      const t = now();
      const instances: Record<string, InstanceStats> = {};
      for (const s of states) {
        const st = deps.outcomes.of(s.instance.id);
        instances[s.instance.id] = { outstanding: s.outstanding, requests: st?.requests ?? 0, failures: st?.failures ?? 0, latencyMs: [...(st?.latencyMs ?? [])] };
      }
      const b = deps.batch?.stats();
      const ever = b || retired.batches > 0;
      const sc = deps.stale.stats();
      const staleEver = deps.stale.configured || sc.served + sc.misses > 0;
      return {
        ...counters,
        ...(ever ? { batches: (b?.batches ?? 0) + retired.batches, batchedCalls: (b?.calls ?? 0) + retired.calls } : {}),
        ...(staleEver ? { staleServed: sc.served, staleMisses: sc.misses } : {}),
        queueDepth: overload.queue.size,
        ejections: states.filter((s) => s.ejectedUntil !== undefined && s.ejectedUntil > t).length,
        instances,
      };
    },
    close: () => dispatch.close(),
  };
}

/** The proxy's parts, made once and shared by every call. */
function assemble(opts: ProxyOptions, log: Logger, now: () => number, counters: Counters): CallDeps {
  const { pool } = opts;
  const budget = createRetryBudget({ ...(opts.retryBudget ?? { ratio: 0.2, minPerSecond: 5 }), now });
  const overload = createOverload({ pool, now, maxQueue: opts.maxQueue ?? 256, queueTimeoutMs: opts.queueTimeoutMs ?? 5000, fallbacks: opts.fallbacks ?? {}, counters });
  const dispatch = createDispatch({
    pool,
    cap: opts.maxConcurrentPerInstance ?? 16,
    now,
    upstream: {
      keepAliveTimeout: 30_000,
      headersTimeout: opts.upstreamHeadersTimeoutMs ?? 30_000,
      bodyTimeout: opts.upstreamBodyTimeoutMs ?? 600_000,
      connect: { timeout: opts.connectTimeoutMs ?? 5000 },
    },
    fallbackFor: (r) => overload.fallbackFor(r),
    budget,
  });
  const retries = createRetries({ dispatch, budget, counters });
  const outcomes = createOutcomes({ pool, queue: overload.queue });
  const parts = { pool, now, log, dispatch, overload, retries, outcomes };
  return { ...parts, batch: batchPathFor(parts, opts.batching), stale: createStaleCache(opts.staleCache ?? {}) };
}

/** The embeddings batcher's path, when batching is on. */
function batchPathFor(parts: ProxyParts, batching: ProxyOptions['batching']) {
  const o = batching?.embeddings;
  return o ? createBatchPath({ ...parts, windowMs: o.windowMs ?? 5, maxBatch: o.maxBatch ?? 32 }) : undefined;
}

function modelList(states: readonly InstanceState[]) {
  // Only models some ready instance has loaded: a probe checking the list sees the region as it is.
  const ids = [...new Set(states.filter((s) => s.ready).flatMap((s) => s.instance.models))].sort();
  return { object: 'list', data: ids.map((id) => ({ id, object: 'model', created: 0, owned_by: 'arus' })) };
}
