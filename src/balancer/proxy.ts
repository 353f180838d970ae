import type { Readable } from 'node:stream';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Pool as UpstreamPool, type Dispatcher } from 'undici';
import type { Logger } from '../log.js';
import { createBatcher, type BatchResponse } from './batch.js';
import { createWaitQueue, OverloadedError } from './queue.js';
import type { Outcome, Pool } from './pool.js';
import type { InstanceState, RequestKind, Work } from './types.js';

/** What the proxy needs of the pool. */
export type ProxyPool = Pick<Pool, 'states' | 'eligible' | 'pick' | 'acquire' | 'release'>;

export type RetryBudgetOptions = {
  /** Retries allowed as a share of requests over the last 10 s. */
  ratio: number;
  /** Retries always allowed per second, so a quiet balancer can still retry. */
  minPerSecond: number;
};

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
};

export interface Proxy {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Capacity may have appeared (an instance became ready): serve queued requests. */
  wake(): void;
  stats(): ProxyStats;
  /** Closes the upstream connection pools. */
  close(): Promise<void>;
}

const ROUTES: Record<string, RequestKind> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completion',
  '/v1/embeddings': 'embeddings',
};

// RFC 9110 §7.6.1 connection-specific fields, plus those the proxy sets itself.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'host', 'content-length']);

const RETRYABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);
const LATENCY_SAMPLES = 256;
/** Answers up to this size with a known length are sent to the client in one write. */
const WHOLE_BODY_BYTES = 64 * 1024;

class ClientGone extends Error {
  constructor() {
    super('client disconnected');
  }
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** `tokens`: a generation's `max_tokens`, for pickers that estimate how long it runs. */
type ForwardRequest = { model: string; kind: RequestKind; tokens?: number; path: string; body: Buffer };
type BatchCtx = { req: IncomingMessage; r: ForwardRequest; parsed: Record<string, unknown> };

export function createProxy(opts: ProxyOptions): Proxy {
  const { pool } = opts;
  const fallbacks = opts.fallbacks ?? {};
  const log = opts.log.child({ component: 'balancer-proxy' });
  const cap = opts.maxConcurrentPerInstance ?? 16;
  const maxBody = opts.maxBodyBytes ?? 10 * 1024 * 1024;
  const now = opts.now ?? Date.now;
  const queueTimeoutMs = opts.queueTimeoutMs ?? 5000;
  const queue = createWaitQueue({ maxQueue: opts.maxQueue ?? 256, queueTimeoutMs });
  const budget = createRetryBudget({ ...(opts.retryBudget ?? { ratio: 0.2, minPerSecond: 5 }), now });
  const upstreamOpts: UpstreamPool.Options = {
    keepAliveTimeout: 30_000,
    headersTimeout: opts.upstreamHeadersTimeoutMs ?? 30_000,
    bodyTimeout: opts.upstreamBodyTimeoutMs ?? 600_000,
    connect: { timeout: opts.connectTimeoutMs ?? 5000 },
  };
  // One keep-alive connection pool per instance URL, looked up directly (no agent, no interceptors on the hot path).
  const upstreams = new Map<string, UpstreamPool>();
  const upstream = (origin: string): UpstreamPool => {
    let p = upstreams.get(origin);
    if (!p) {
      if (upstreams.size >= 2 * pool.states().length + 8) prune();
      upstreams.set(origin, (p = new UpstreamPool(origin, upstreamOpts)));
    }
    return p;
  };
  /** Closes the pools of instances no longer configured (their requests in flight finish first). */
  function prune(): void {
    const live = new Set(pool.states().map((s) => s.instance.url));
    for (const [origin, p] of upstreams)
      if (!live.has(origin)) {
        upstreams.delete(origin);
        void p.close().catch(() => {});
      }
  }
  const counters = { requests: 0, retries: 0, retriesDenied: 0, overloaded: 0, fallbacks: 0 };
  const batchOpts = opts.batching?.embeddings;
  const batcher = batchOpts
    ? createBatcher<BatchCtx>({ windowMs: batchOpts.windowMs ?? 5, maxBatch: batchOpts.maxBatch ?? 32, send: sendBatch })
    : undefined;
  const perInstance = new Map<string, InstanceStats & { next: number }>();

  function record(s: InstanceState, o: Outcome): void {
    pool.release(s, o);
    queue.wake();
    let st = perInstance.get(s.instance.id);
    if (!st) perInstance.set(s.instance.id, (st = { outstanding: 0, requests: 0, failures: 0, latencyMs: [], next: 0 }));
    st.requests++;
    if (!o.ok) st.failures++;
    // A ring of recent samples: bounded, however long the balancer runs.
    if (st.latencyMs.length < LATENCY_SAMPLES) st.latencyMs.push(o.durationMs);
    else st.latencyMs[st.next] = o.durationMs;
    st.next = (st.next + 1) % LATENCY_SAMPLES;
  }

  const isLive = (s: InstanceState, t: number) => s.ready && !(s.ejectedUntil !== undefined && s.ejectedUntil > t);
  const serves = (s: InstanceState, model?: string, kind?: RequestKind) =>
    (model === undefined || s.instance.models.includes(model)) && (kind === undefined || s.instance.kinds.includes(kind));

  /**
   * The picker's choice when it has room and was not tried already; else the
   * least loaded live instance that has room. Undefined: wait (or give up).
   */
  function take(model: string | undefined, kind: RequestKind, tried: ReadonlySet<string>, tokens?: number): InstanceState | undefined {
    const s = pool.pick({ model, kind, tokens });
    if (s && s.outstanding < cap && !tried.has(s.instance.id)) return s;
    const t = now();
    let best: InstanceState | undefined;
    for (const c of pool.states())
      if (isLive(c, t) && serves(c, model, kind) && c.outstanding < cap && !tried.has(c.instance.id))
        if (!best || c.outstanding < best.outstanding) best = c;
    return best;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    counters.requests++;
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort(new ClientGone());
    });
    try {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      const kind = ROUTES[path];
      if (req.method === 'GET' && path === '/v1/models') return sendJson(res, 200, modelList(pool.states()));
      if (req.method === 'GET' && path === '/health') {
        const up = pool.states().some((s) => isLive(s, now()));
        return up ? sendJson(res, 200, { status: 'ok' }) : sendError(res, new HttpError(503, 'no ready instance', 'no_ready_instance', { 'retry-after': '1' }));
      }
      if (!kind) throw new HttpError(Object.keys(ROUTES).includes(path) ? 405 : 404, `no route ${req.method} ${path}`, 'not_found');
      if (req.method !== 'POST') throw new HttpError(405, `method ${req.method} not allowed on ${path}`, 'method_not_allowed');

      const body = await readBody(req, maxBody);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        throw new HttpError(400, 'body is not valid JSON', 'invalid_json');
      }
      const m = (parsed as { model?: unknown } | null)?.model;
      if (typeof m !== 'string' || m === '') throw new HttpError(400, 'model: a non-empty string is required', 'invalid_request');
      const body_ = parsed as Record<string, unknown>;
      await forward(req, res, { model: m, kind, tokens: kind === 'embeddings' ? undefined : maxTokens(body_), path: url, body }, ac.signal, body_);
    } catch (err) {
      if (ac.signal.aborted || res.destroyed) return; // nobody left to answer
      if (res.headersSent) return void res.destroy();
      if (err instanceof HttpError) return sendError(res, err);
      log.error({ err }, 'proxy request failed');
      sendError(res, new HttpError(500, 'internal error', 'internal_error'));
    }
  }

  /** The request rewritten for `r.model`'s fallback model, if one is configured and has a live instance. */
  function fallbackFor(r: ForwardRequest): ForwardRequest | undefined {
    const to = fallbacks[r.model];
    if (!to || to === r.model) return undefined;
    const t = now();
    if (!pool.eligible({ model: to, kind: r.kind }).some((s) => isLive(s, t))) return undefined;
    const parsed = JSON.parse(r.body.toString('utf8')) as Record<string, unknown>;
    return { ...r, model: to, body: Buffer.from(JSON.stringify({ ...parsed, model: to })) };
  }

  /**
   * Admission, the upstream request and its retries, up to the response
   * headers. Falls back to the configured model's pool when the requested
   * model has no live instance or its pool is full; `headers` then names the fallback.
   */
  async function exchange(
    r: ForwardRequest,
    headersFor: (length: number) => Record<string, string | string[]>,
    signal: AbortSignal,
  ): Promise<{ s: InstanceState; up: Dispatcher.ResponseData; ms: () => number; headers: Record<string, string>; work: Work }> {
    const all = pool.eligible({ model: r.model, kind: r.kind });
    if (all.length === 0)
      throw new HttpError(404, `The model \`${r.model}\` does not exist or does not serve ${r.kind} requests.`, 'model_not_found');
    let target = r;
    if (!all.some((s) => isLive(s, now()))) {
      const f = fallbackFor(r);
      if (!f) throw new HttpError(503, `no ready instance serves \`${r.model}\``, 'no_ready_instance', { 'retry-after': '1' });
      target = f;
    }

    budget.deposit();
    const tried = new Set<string>();
    for (;;) {
      let s: InstanceState | undefined;
      if (tried.size === 0) {
        try {
          s = await queue.wait(() => take(target.model, target.kind, tried, target.tokens), signal, `${target.model}|${target.kind}|${[...tried].join(',')}`);
        } catch (err) {
          if (!(err instanceof OverloadedError)) throw err;
          // The model's pool is exhausted: its fallback's, if that has a free slot now.
          const f = target === r ? fallbackFor(r) : undefined;
          s = f && take(f.model, f.kind, tried, f.tokens);
          if (!f || !s) {
            counters.overloaded++;
            throw new HttpError(503, err.message, 'overloaded', { 'retry-after': String(err.retryAfterS) });
          }
          target = f;
        }
      } else s = take(target.model, target.kind, tried, target.tokens);
      if (!s) throw new HttpError(502, 'every instance tried failed', 'upstream_failed');
      tried.add(s.instance.id);
      const work: Work = { kind: target.kind, tokens: target.tokens, at: now() };
      pool.acquire(s, work);
      const t0 = performance.now();
      const ms = () => performance.now() - t0;
      // A retry is possible only while nothing has reached the client and another instance has room.
      const mayRetry = () => {
        const t = now();
        if (!pool.states().some((c) => isLive(c, t) && serves(c, target.model, target.kind) && c.outstanding < cap && !tried.has(c.instance.id))) return false;
        if (budget.tryWithdraw()) return true;
        counters.retriesDenied++;
        return false;
      };

      let up;
      try {
        up = await upstream(s.instance.url).request({ path: target.path, method: 'POST', headers: headersFor(target.body.length), body: target.body, signal });
      } catch (err) {
        const code = errCode(err);
        const timeout = TIMEOUT_CODES.has(code);
        if (signal.aborted) {
          record(s, { ok: true, durationMs: ms(), cancelled: true, work }); // the client left; the instance did nothing wrong
          throw err;
        }
        record(s, { ok: false, durationMs: ms(), timeout, work });
        log.debug({ instance: s.instance.id, code }, 'upstream request failed');
        if (RETRYABLE_CODES.has(code) && mayRetry()) {
          counters.retries++;
          continue;
        }
        throw timeout
          ? new HttpError(504, `instance ${s.instance.id} timed out`, 'upstream_timeout')
          : new HttpError(502, `instance ${s.instance.id} failed: ${code || 'error'}`, 'upstream_failed');
      }

      if (up.statusCode === 503 && mayRetry()) {
        await up.body.dump().catch(() => {});
        record(s, { ok: false, status: 503, durationMs: ms(), work });
        counters.retries++;
        continue;
      }
      const headers: Record<string, string> = { 'x-arus-instance': s.instance.id };
      if (target !== r) {
        counters.fallbacks++;
        headers['x-arus-fallback'] = `${r.model} -> ${target.model}`;
      }
      return { s, up, ms, headers, work };
    }
  }

  async function forward(
    req: IncomingMessage,
    res: ServerResponse,
    r: ForwardRequest,
    signal: AbortSignal,
    parsed: Record<string, unknown>,
  ): Promise<void> {
    if (batcher && r.kind === 'embeddings') {
      // Calls with other credentials or another path are never merged; the batcher keys the options itself.
      const auth = req.headers.authorization ?? '';
      const batched = batcher.submit(parsed, { key: `${r.path}\n${auth}`, signal, ctx: { req, r, parsed } });
      if (batched) {
        const out = await batched;
        res.writeHead(out.status, { ...out.headers, 'content-length': out.body.length });
        res.end(out.body);
        return;
      }
    }

    const { s, up, ms, headers, work } = await exchange(r, (length) => forwardHeaders(req.headers, length, req.socket.remoteAddress), signal);
    const out = responseHeaders(up.headers, headers);
    const length = out['content-length'] === undefined ? NaN : Number(out['content-length']);
    // A small answer of known length goes out as one write, headers and body
    // together; a stream (or an unknown or large body) is passed on chunk by
    // chunk, its headers first (a stream's before its first token).
    const whole = length <= WHOLE_BODY_BYTES && !isEventStream(up.headers);
    res.writeHead(up.statusCode, out);
    if (!whole) res.flushHeaders();
    try {
      await pipeBody(up.body, res, whole, signal);
      record(s, { ok: up.statusCode < 500, status: up.statusCode, durationMs: ms(), work });
    } catch (err) {
      up.body.destroy();
      if (signal.aborted) record(s, { ok: true, status: up.statusCode, durationMs: ms(), cancelled: true, work });
      else record(s, { ok: false, status: up.statusCode, durationMs: ms(), timeout: TIMEOUT_CODES.has(errCode(err)), work });
      res.destroy(); // cut the client's stream too: a truncated reply must not look complete
    }
  }

  /** One (merged) embeddings call for the batcher: the whole answer, buffered, to be split. */
  async function sendBatch(body: Record<string, unknown>, signal: AbortSignal, ctx: BatchCtx | undefined): Promise<BatchResponse> {
    if (!ctx) throw new Error('batch without a caller');
    const buf = body === ctx.parsed ? ctx.r.body : Buffer.from(JSON.stringify(body));
    const headersFor = (length: number) => {
      const h = forwardHeaders(ctx.req.headers, length, ctx.req.socket.remoteAddress);
      delete h['accept-encoding']; // the answer is parsed and split here
      return h;
    };
    const { s, up, ms, headers, work } = await exchange({ ...ctx.r, body: buf }, headersFor, signal);
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of up.body) chunks.push(chunk as Buffer);
      record(s, { ok: up.statusCode < 500, status: up.statusCode, durationMs: ms(), work });
      return { status: up.statusCode, headers: responseHeaders(up.headers, headers, false), body: Buffer.concat(chunks) };
    } catch (err) {
      up.body.destroy();
      const timeout = TIMEOUT_CODES.has(errCode(err));
      if (signal.aborted) record(s, { ok: true, status: up.statusCode, durationMs: ms(), cancelled: true, work });
      else record(s, { ok: false, status: up.statusCode, durationMs: ms(), timeout, work });
      throw timeout
        ? new HttpError(504, `instance ${s.instance.id} timed out`, 'upstream_timeout')
        : new HttpError(502, `instance ${s.instance.id} failed mid-answer`, 'upstream_failed');
    }
  }

  return {
    handle,
    wake: () => queue.wake(),
    stats() {
      const states = pool.states();
      const t = now();
      const instances: Record<string, InstanceStats> = {};
      for (const s of states) {
        const st = perInstance.get(s.instance.id);
        instances[s.instance.id] = { outstanding: s.outstanding, requests: st?.requests ?? 0, failures: st?.failures ?? 0, latencyMs: [...(st?.latencyMs ?? [])] };
      }
      const b = batcher?.stats();
      return {
        ...counters,
        ...(b ? { batches: b.batches, batchedCalls: b.calls } : {}),
        queueDepth: queue.size,
        ejections: states.filter((s) => s.ejectedUntil !== undefined && s.ejectedUntil > t).length,
        instances,
      };
    },
    close: async () => void (await Promise.all([...upstreams.values()].map((p) => p.close()))),
  };
}

/**
 * Finagle-style retry budget: retries in the last 10 s may not pass
 * `ratio` × requests plus `minPerSecond` × 10, so a failing region cannot
 * multiply its own load.
 */
export function createRetryBudget(opts: RetryBudgetOptions & { now?: () => number; windowS?: number }) {
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

/** The request body, read without an async iterator (this runs once per request). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const tooBig = () => new HttpError(413, `body larger than ${max} bytes`, 'body_too_large', { connection: 'close' });
  if (Number(req.headers['content-length'] ?? 0) > max) return Promise.reject(tooBig());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        done();
        req.resume(); // drain what is left; the answer says connection: close
        reject(tooBig());
      } else chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      done();
      reject(err);
    };
    const onClose = () => {
      done();
      reject(new ClientGone());
    };
    const done = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** An answer passed on whole (`whole`: one write at the end) or chunk by chunk, with back-pressure both ways. */
function pipeBody(body: Readable, res: ServerResponse, whole: boolean, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer) => {
      if (whole) chunks.push(chunk);
      else if (!res.write(chunk)) body.pause();
    };
    const onDrain = () => body.resume();
    const onEnd = () => {
      done();
      if (whole) res.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
      else res.end();
      resolve();
    };
    const onError = (err: Error) => {
      done();
      reject(err);
    };
    const onAbort = () => onError(signal.reason as Error);
    // The client went away: reject (the caller aborts upstream) unless the answer was complete.
    const onClose = () => {
      if (!res.writableFinished) onError(new ClientGone());
    };
    const done = () => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      res.off('drain', onDrain);
      res.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    if (signal.aborted) return reject(signal.reason);
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    res.on('drain', onDrain);
    res.on('close', onClose);
    signal.addEventListener('abort', onAbort);
  });
}

function forwardHeaders(h: IncomingHttpHeaders, length: number, client: string | undefined): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in h) {
    const v = h[k];
    if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  }
  out['content-length'] = String(length);
  if (client) out['x-forwarded-for'] = h['x-forwarded-for'] ? `${h['x-forwarded-for']}, ${client}` : client;
  return out;
}

/**
 * An instance's answer headers for the client, with `extra` on top. Its
 * `content-length` is kept when the body is passed on as it is (`keepLength`)
 * and was not sent chunked.
 */
function responseHeaders(h: Record<string, string | string[] | undefined>, extra?: Record<string, string>, keepLength = true): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in h) {
    const v = h[k];
    if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  }
  if (keepLength && h['content-length'] !== undefined && h['transfer-encoding'] === undefined) out['content-length'] = h['content-length'];
  if (extra) for (const k in extra) out[k] = extra[k];
  return out;
}

function isEventStream(h: Record<string, string | string[] | undefined>): boolean {
  const t = h['content-type'];
  return typeof t === 'string' && t.startsWith('text/event-stream');
}

/** A generation's token budget, when the body gives one (`max_tokens`, or the newer `max_completion_tokens`). */
function maxTokens(body: Record<string, unknown>): number | undefined {
  const n = body.max_tokens ?? body.max_completion_tokens;
  return typeof n === 'number' && n > 0 && Number.isFinite(n) ? n : undefined;
}

function errCode(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null;
  return String(e?.code ?? e?.cause?.code ?? '');
}

function modelList(states: readonly InstanceState[]) {
  // Only models some ready instance has loaded: a probe checking the list sees the region as it is.
  const ids = [...new Set(states.filter((s) => s.ready).flatMap((s) => s.instance.models))].sort();
  return { object: 'list', data: ids.map((id) => ({ id, object: 'model', created: 0, owned_by: 'arus' })) };
}

function sendError(res: ServerResponse, err: HttpError): void {
  const type = err.status === 404 ? 'NotFoundError' : err.status >= 500 ? 'ServiceUnavailableError' : 'BadRequestError';
  sendJson(res, err.status, { error: { message: err.message, type, param: null, code: err.code } }, err.headers);
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
