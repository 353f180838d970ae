import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
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
const RESOLVED = Promise.resolve();
const EMPTY_LIST: readonly string[] = [];
const EMPTY = Buffer.alloc(0);
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
  function take(model: string | undefined, kind: RequestKind, tried: readonly string[], tokens?: number): InstanceState | undefined {
    const t = now();
    let best: InstanceState | undefined;
    for (const c of pool.states())
      if (c.outstanding < cap && isLive(c, t) && serves(c, model, kind) && !tried.includes(c.instance.id))
        if (!best || c.outstanding < best.outstanding) best = c;
    // Every instance full (the usual state of a queued request woken by a release elsewhere): no pick.
    if (!best) return undefined;
    const s = pool.pick({ model, kind, tokens });
    return s && s.outstanding < cap && !tried.includes(s.instance.id) ? s : best;
  }

  /**
   * The hot path is callbacks, not promises: one `Call` per request is both
   * the client's context and the undici dispatch handler, so an answer goes
   * from the instance's socket to the client's with no stream, promise or
   * AbortController in between (those are made only for a queued or batched request).
   */
  function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      route(req, res);
    } catch (err) {
      failed(res, err, false);
    }
    return RESOLVED;
  }

  /** The answer to a request that could not be served; nothing when its client is gone. */
  function failed(res: ServerResponse, err: unknown, gone: boolean): void {
    if (gone || res.destroyed) return; // nobody left to answer
    if (res.headersSent) return void res.destroy();
    if (err instanceof HttpError) return sendError(res, err);
    log.error({ err }, 'proxy request failed');
    sendError(res, new HttpError(500, 'internal error', 'internal_error'));
  }

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
    const call = new Call(req, res, kind, url);
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

  /** The state of one proxied request, and the undici handler of its upstream attempts. */
  class Call implements Dispatcher.DispatchHandlers {
    r!: ForwardRequest;
    /** The request as sent: `r`, or its fallback. */
    target!: ForwardRequest;
    gone = false;
    /** Made only for the batcher. */
    ac?: AbortController;
    tried: string[] = [];
    leaveQueue?: () => void;
    headers?: string[];
    headersFor?: ForwardRequest;
    // The attempt in flight.
    s?: InstanceState;
    work?: Work;
    t0 = 0;
    abortUpstream?: (err: Error) => void;
    resume?: () => void;
    status = 0;
    /** A 503 being read to its end (so the connection stays open) before a retry. */
    discard = false;
    whole = false;
    chunks?: Buffer[];

    constructor(
      readonly req: IncomingMessage,
      readonly res: ServerResponse,
      readonly kind: RequestKind,
      readonly url: string,
    ) {}

    clientClosed(): void {
      if (this.res.writableFinished || this.gone) return;
      this.gone = true;
      const reason = new ClientGone();
      this.ac?.abort(reason);
      this.leaveQueue?.();
      this.abortUpstream?.(reason);
    }

    received(body: Buffer): void {
      if (this.gone) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        return this.fail(new HttpError(400, 'body is not valid JSON', 'invalid_json'));
      }
      const m = (parsed as { model?: unknown } | null)?.model;
      if (typeof m !== 'string' || m === '') return this.fail(new HttpError(400, 'model: a non-empty string is required', 'invalid_request'));
      const body_ = parsed as Record<string, unknown>;
      this.r = { model: m, kind: this.kind, tokens: this.kind === 'embeddings' ? undefined : maxTokens(body_), path: this.url, body };
      if (batcher && this.kind === 'embeddings') {
        // Calls with other credentials or another path are never merged; the batcher keys the options itself.
        const auth = this.req.headers.authorization ?? '';
        const signal = (this.ac = new AbortController()).signal;
        const batched = batcher.submit(body_, { key: `${this.url}\n${auth}`, signal, ctx: { req: this.req, r: this.r, parsed: body_ } });
        if (batched)
          return void batched.then((out) => {
            this.res.writeHead(out.status, { ...out.headers, 'content-length': out.body.length });
            this.res.end(out.body);
          }, (err: unknown) => this.fail(err));
      }
      this.admit();
    }

    /** Admission: an instance now, or a place in the queue; the fallback model's pool when the model's is down or full. */
    admit(): void {
      const r = this.r;
      const all = pool.eligible({ model: r.model, kind: r.kind });
      if (all.length === 0)
        return this.fail(new HttpError(404, `The model \`${r.model}\` does not exist or does not serve ${r.kind} requests.`, 'model_not_found'));
      this.target = r;
      if (!all.some((s) => isLive(s, now()))) {
        const f = fallbackFor(r);
        if (!f) return this.fail(new HttpError(503, `no ready instance serves \`${r.model}\``, 'no_ready_instance', { 'retry-after': '1' }));
        this.target = f;
      }
      budget.deposit();
      const t = this.target;
      // Nobody waiting ahead: take a slot at once, with no closures.
      const s = queue.size === 0 ? take(t.model, t.kind, EMPTY_LIST, t.tokens) : undefined;
      if (s) return this.send(s);
      this.leaveQueue = queue.enter(
        () => take(t.model, t.kind, EMPTY_LIST, t.tokens),
        (s) => {
          this.leaveQueue = undefined;
          this.sendSafely(s);
        },
        (err) => {
          this.leaveQueue = undefined;
          this.overloaded(err);
        },
        `${t.model}|${t.kind}|`,
      );
    }

    /** The model's pool is exhausted: its fallback's, if that has a free slot now; else 503. */
    overloaded(err: OverloadedError): void {
      const f = this.target === this.r ? fallbackFor(this.r) : undefined;
      const s = f && take(f.model, f.kind, EMPTY_LIST, f.tokens);
      if (!f || !s) {
        counters.overloaded++;
        return this.fail(new HttpError(503, err.message, 'overloaded', { 'retry-after': String(err.retryAfterS) }));
      }
      this.target = f;
      this.send(s);
    }

    /** `send` from a queue wake-up (another request's completion): a throw stays with this request. */
    sendSafely(s: InstanceState): void {
      try {
        this.send(s);
      } catch (err) {
        if (this.s) this.done({ ok: true, cancelled: true });
        this.fail(err);
      }
    }

    /** One upstream attempt. */
    send(s: InstanceState): void {
      if (this.gone) return;
      const t = this.target;
      this.tried.push(s.instance.id);
      this.s = s;
      this.work = { kind: t.kind, tokens: t.tokens, at: now() };
      pool.acquire(s, this.work);
      this.t0 = performance.now();
      this.abortUpstream = undefined;
      this.status = 0;
      this.discard = false;
      if (this.headersFor !== t) {
        this.headers = forwardHeaders(this.req.rawHeaders, t.body.length, this.req.socket.remoteAddress);
        this.headersFor = t;
      }
      upstream(s.instance.url).dispatch({ path: t.path, method: 'POST', headers: this.headers, body: t.body }, this);
    }

    /** The next attempt, once `mayRetry` said yes. */
    retry(): void {
      counters.retries++;
      const t = this.target;
      const s = take(t.model, t.kind, this.tried, t.tokens);
      if (s) return this.send(s);
      this.fail(new HttpError(502, 'every instance tried failed', 'upstream_failed'));
    }

    /** A retry is possible only while nothing has reached the client and another instance has room. */
    mayRetry(): boolean {
      const t = this.target;
      const tried = this.tried;
      const at = now();
      if (!pool.states().some((c) => isLive(c, at) && serves(c, t.model, t.kind) && c.outstanding < cap && !tried.includes(c.instance.id))) return false;
      if (budget.tryWithdraw()) return true;
      counters.retriesDenied++;
      return false;
    }

    /** Reports the attempt's outcome; returns the instance's id. */
    done(o: Omit<Outcome, 'durationMs'> & { durationMs?: number }): string {
      const s = this.s!;
      this.s = undefined;
      o.durationMs = performance.now() - this.t0;
      o.work = this.work;
      record(s, o as Outcome);
      return s.instance.id;
    }

    // ---- undici handler

    onConnect(abort: (err?: Error) => void): void {
      if (this.gone) return abort(new ClientGone());
      this.abortUpstream = abort;
    }

    onHeaders(statusCode: number, raw: Buffer[] | string[] | null, resume: () => void): boolean {
      if (statusCode < 200) return true;
      this.status = statusCode;
      if (statusCode === 503 && this.mayRetry()) {
        this.discard = true;
        return true;
      }
      const out: OutgoingHttpHeaders = {};
      let length = NaN;
      let chunked = false;
      let stream = false;
      if (raw)
        for (let i = 0; i < raw.length; i += 2) {
          const k = raw[i].toString('latin1').toLowerCase();
          const v = raw[i + 1].toString('latin1');
          if (k === 'content-length') length = Number(v);
          else if (k === 'transfer-encoding') chunked = true;
          else if (k === 'content-type' && v.startsWith('text/event-stream')) stream = true;
          if (HOP_BY_HOP.has(k)) continue;
          const prev = out[k];
          out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [String(prev), v];
        }
      if (!chunked && !Number.isNaN(length)) out['content-length'] = length;
      out['x-arus-instance'] = this.s!.instance.id;
      if (this.target !== this.r) {
        counters.fallbacks++;
        out['x-arus-fallback'] = `${this.r.model} -> ${this.target.model}`;
      }
      // A small answer of known length goes out as one write, headers and body
      // together; a stream (or an unknown or large body) is passed on chunk by
      // chunk, its headers first (a stream's before its first token).
      this.whole = !chunked && length <= WHOLE_BODY_BYTES && !stream;
      this.res.writeHead(statusCode, out);
      if (!this.whole) this.res.flushHeaders();
      this.resume = resume;
      return true;
    }

    onData(chunk: Buffer): boolean {
      if (this.discard) return true;
      if (this.whole) {
        (this.chunks ??= []).push(chunk);
        return true;
      }
      if (this.res.write(chunk)) return true;
      this.res.once('drain', this.resume!);
      return false;
    }

    onComplete(): void {
      if (this.discard) {
        this.done({ ok: false, status: 503 });
        return this.retry();
      }
      const c = this.chunks;
      if (!this.whole) this.res.end();
      else if (!c) this.res.end();
      else this.res.end(c.length === 1 ? c[0] : Buffer.concat(c));
      this.done({ ok: this.status < 500, status: this.status });
    }

    onError(err: Error): void {
      // undici does not guard this one: a throw here must not reach its connection state.
      try {
        this.upstreamFailed(err);
      } catch (e) {
        this.fail(e);
      }
    }

    upstreamFailed(err: Error): void {
      const code = errCode(err);
      const timeout = TIMEOUT_CODES.has(code);
      if (this.gone) return void this.done({ ok: true, ...(this.status ? { status: this.status } : {}), cancelled: true }); // the client left; the instance did nothing wrong
      if (this.status === 0 || this.discard) {
        // Nothing reached the client yet: another instance may take it (a 503 being read already has its retry granted).
        const id = this.done({ ok: false, ...(this.discard ? { status: 503 } : {}), timeout });
        log.debug({ instance: id, code }, 'upstream request failed');
        if (this.discard || (RETRYABLE_CODES.has(code) && this.mayRetry())) return this.retry();
        return this.fail(
          timeout ? new HttpError(504, `instance ${id} timed out`, 'upstream_timeout') : new HttpError(502, `instance ${id} failed: ${code || 'error'}`, 'upstream_failed'),
        );
      }
      this.done({ ok: false, status: this.status, timeout });
      this.res.destroy(); // cut the client's stream too: a truncated reply must not look complete
    }

    fail(err: unknown): void {
      failed(this.res, err, this.gone);
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
    const tried: string[] = [];
    for (;;) {
      let s: InstanceState | undefined;
      if (tried.length === 0) {
        try {
          s = await queue.wait(() => take(target.model, target.kind, tried, target.tokens), signal, `${target.model}|${target.kind}|`);
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
      tried.push(s.instance.id);
      const work: Work = { kind: target.kind, tokens: target.tokens, at: now() };
      pool.acquire(s, work);
      const t0 = performance.now();
      const ms = () => performance.now() - t0;
      // A retry is possible only while nothing has reached the client and another instance has room.
      const mayRetry = () => {
        const t = now();
        if (!pool.states().some((c) => isLive(c, t) && serves(c, target.model, target.kind) && c.outstanding < cap && !tried.includes(c.instance.id))) return false;
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

  /** One (merged) embeddings call for the batcher: the whole answer, buffered, to be split. */
  async function sendBatch(body: Record<string, unknown>, signal: AbortSignal, ctx: BatchCtx | undefined): Promise<BatchResponse> {
    if (!ctx) throw new Error('batch without a caller');
    const buf = body === ctx.parsed ? ctx.r.body : Buffer.from(JSON.stringify(body));
    const headersFor = (length: number) => {
      const h = forwardHeaderObject(ctx.req.headers, length, ctx.req.socket.remoteAddress);
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

/**
 * The request body, read with plain listeners (this runs once per request).
 * A client that leaves is seen by the caller on the response's `close`.
 */
function readBody(req: IncomingMessage, max: number, cb: (err: Error | undefined, body?: Buffer) => void): void {
  const tooBig = () => new HttpError(413, `body larger than ${max} bytes`, 'body_too_large', { connection: 'close' });
  if (Number(req.headers['content-length'] ?? 0) > max) return cb(tooBig());
  let first: Buffer | undefined;
  let chunks: Buffer[] | undefined;
  let size = 0;
  let settled = false;
  // Listeners stay on the request (it is not reused); `settled` keeps them quiet once answered.
  req.on('data', (chunk: Buffer) => {
    if (settled) return;
    size += chunk.length;
    if (size > max) {
      settled = true;
      req.resume(); // drain what is left; the answer says connection: close
      cb(tooBig());
    } else if (!first) first = chunk;
    else (chunks ??= [first]).push(chunk);
  });
  req.on('end', () => {
    if (settled) return;
    settled = true;
    cb(undefined, chunks ? Buffer.concat(chunks, size) : (first ?? EMPTY));
  });
  req.on('error', (err: Error) => {
    if (settled) return;
    settled = true;
    cb(err);
  });
}

/** The client's headers for the instance, as undici's flat list, from the raw list (no header object is built). */
function forwardHeaders(raw: readonly string[], length: number, client: string | undefined): string[] {
  const out: string[] = [];
  let xff: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    if (k === 'x-forwarded-for') xff = xff === undefined ? raw[i + 1] : `${xff}, ${raw[i + 1]}`;
    else if (!HOP_BY_HOP.has(k)) out.push(k, raw[i + 1]);
  }
  out.push('content-length', String(length));
  if (client) out.push('x-forwarded-for', xff ? `${xff}, ${client}` : client);
  else if (xff !== undefined) out.push('x-forwarded-for', xff);
  return out;
}

/** The client's headers for the instance, as an object (the batcher's path). */
function forwardHeaderObject(h: IncomingHttpHeaders, length: number, client: string | undefined): Record<string, string | string[]> {
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
