// Streaming pass-through: one proxied request on the callback path. The hot
// path is callbacks, not promises: one `Call` per request is both the
// client's context and the undici dispatch handler, so an answer goes from the
// instance's socket to the client's with no stream, promise or
// AbortController in between (those are made only for a queued or batched request).
// A request its model's stale cache can keep (stale-cache.ts) carries its key
// from `received`; only such a request's 200 answer is collected to be kept,
// and only it may be answered from the cache where it would get a 503.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Outcome } from '../pool.js';
import type { OverloadedError } from '../queue.js';
import type { InstanceState, RequestKind, Work } from '../types.js';
import type { BatchPath } from './batch-path.js';
import { ClientGone, failed, HttpError, upstreamError } from './errors.js';
import { copyAnswerHeaders, forwardHeaders } from './headers.js';
import type { ProxyParts } from './parts.js';
import { maxTokens, parseBody, promptKey, type ForwardRequest } from './request.js';
import { errCode, isRetryable, isTimeout } from './retries.js';
import { sendStale, type StaleCache } from './stale-cache.js';

/** The proxy's parts a call works with, made once per proxy. */
export type CallDeps = ProxyParts & {
  /** The embeddings batcher's path, when batching is on. */
  batch?: BatchPath;
  /** The per-model stale caches (none configured: every lookup is one map miss). */
  stale: StaleCache;
};

/** A 200 answer of a cacheable request, collected to be kept once it completes. */
type Keep = { contentType?: string; chunks: Buffer[]; bytes: number; max: number };

const EMPTY_LIST: readonly string[] = [];
/** Answers up to this size with a known length are sent to the client in one write. */
const WHOLE_BODY_BYTES = 64 * 1024;

/** The state of one proxied request, and the undici handler of its upstream attempts. */
export class Call implements Dispatcher.DispatchHandlers {
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
  /** The prompt tokens the picker expects the instance to have cached (the `prefix` strategy). */
  prefixHit?: number;
  t0 = 0;
  abortUpstream?: (err: Error) => void;
  resume?: () => void;
  status = 0;
  /** A 503 being read to its end (so the connection stays open) before a retry. */
  discard = false;
  whole = false;
  chunks?: Buffer[];
  /** The stale cache's name for this request: set only when its model has a cache and it is deterministic. */
  key?: string;
  /** The answer being collected for the stale cache. */
  keep?: Keep;

  constructor(
    readonly d: CallDeps,
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
    const parsed = parseBody(body);
    if (parsed instanceof HttpError) return this.fail(parsed);
    const gen = this.kind !== 'embeddings';
    this.r = { model: parsed.model, kind: this.kind, tokens: gen ? maxTokens(parsed) : undefined, path: this.url, body };
    if (gen && this.d.pool.wantsPrompt?.()) this.r.prompt = promptKey(parsed, this.req.headers['x-session-id'], body.length);
    this.key = this.d.stale.keyOf(parsed.model, this.url, this.req.headers, body, parsed);
    const batch = this.d.batch;
    if (batch && this.kind === 'embeddings') {
      const batched = batch.submit(parsed, this.req, this.r, (this.ac = new AbortController()).signal);
      if (batched)
        return void batched.then((out) => {
          this.res.writeHead(out.status, { ...out.headers, 'content-length': out.body.length });
          this.res.end(out.body);
          if (this.key !== undefined && out.status === 200 && out.headers['x-arus-fallback'] === undefined && out.headers['content-encoding'] === undefined)
            this.d.stale.store(this.r.model, this.key, { status: 200, contentType: headerText(out.headers['content-type']), chunks: [out.body], bytes: out.body.length });
        }, (err: unknown) => (isRefusal(err) ? this.refused(err) : this.fail(err)));
    }
    this.admit();
  }

  /** Admission: an instance now, or a place in the queue; the fallback model's pool when the model's is down or full. */
  admit(): void {
    const t = this.d.dispatch.admit(this.r);
    if (t instanceof HttpError) return isRefusal(t) ? this.refused(t) : this.fail(t);
    this.target = t;
    const { dispatch, overload } = this.d;
    // Nobody waiting ahead: take a slot at once, with no closures.
    const s = overload.queue.size === 0 ? dispatch.take(t.model, t.kind, EMPTY_LIST, t.tokens, t.prompt) : undefined;
    if (s) return this.send(s);
    this.leaveQueue = overload.queue.enter(
      () => dispatch.take(t.model, t.kind, EMPTY_LIST, t.tokens, t.prompt),
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
    const f = this.d.overload.overflowFor(this.r, this.target);
    const s = f && this.d.dispatch.take(f.model, f.kind, EMPTY_LIST, f.tokens, f.prompt);
    if (!f || !s) {
      if (this.key !== undefined && this.fromCache()) return;
      return this.fail(this.d.overload.refuse(err));
    }
    this.target = f;
    this.send(s);
  }

  /** A 503 for a request nothing can serve now: the stale cache's answer instead, if it has one. */
  refused(err: HttpError): void {
    if (this.key !== undefined && this.fromCache()) return;
    this.fail(err);
  }

  /** Answers from the stale cache; false on a miss (or with nobody left to answer). */
  fromCache(): boolean {
    if (this.gone || this.res.destroyed) return false;
    const hit = this.d.stale.lookup(this.r.model, this.key!);
    if (!hit) return false;
    sendStale(this.res, this.r.model, hit);
    return true;
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
    this.work = { kind: t.kind, tokens: t.tokens, at: this.d.now(), ...(t.prompt ? { prompt: t.prompt } : {}) };
    this.prefixHit = this.d.pool.acquire(s, this.work);
    this.t0 = performance.now();
    this.abortUpstream = undefined;
    this.status = 0;
    this.discard = false;
    if (this.headersFor !== t) {
      this.headers = forwardHeaders(this.req.rawHeaders, t.body.length, this.req.socket.remoteAddress);
      this.headersFor = t;
    }
    this.d.dispatch.upstream(s.instance.url).dispatch({ path: t.path, method: 'POST', headers: this.headers, body: t.body }, this);
  }

  /** The next attempt, once `mayRetry` said yes. */
  retry(): void {
    const s = this.d.retries.next(this.target, this.tried);
    if (s) return this.send(s);
    this.fail(new HttpError(502, 'every instance tried failed', 'upstream_failed'));
  }

  /** Reports the attempt's outcome; returns the instance's id. */
  done(o: Omit<Outcome, 'durationMs'> & { durationMs?: number }): string {
    const s = this.s!;
    this.s = undefined;
    o.durationMs = performance.now() - this.t0;
    o.work = this.work;
    this.d.outcomes.record(s, o as Outcome);
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
    if (statusCode === 503 && this.d.retries.mayRetry(this.target, this.tried)) {
      this.discard = true;
      return true;
    }
    const out: OutgoingHttpHeaders = {};
    const length = raw ? copyAnswerHeaders(raw, out) : NaN;
    out['x-arus-instance'] = this.s!.instance.id;
    if (this.prefixHit !== undefined) out['x-arus-prefix-hit'] = String(this.prefixHit);
    if (this.target !== this.r) out['x-arus-fallback'] = this.d.overload.served(this.r, this.target);
    // Only the model's own answers are kept (a fallback's would replace them with a degraded one), and only unencoded ones.
    else if (this.key !== undefined && statusCode === 200 && out['content-encoding'] === undefined) this.keepAnswer(out);
    // A small answer of known length goes out as one write, headers and body
    // together; a stream (or an unknown or large body) is passed on chunk by
    // chunk, its headers first (a stream's before its first token).
    this.whole = length <= WHOLE_BODY_BYTES;
    this.res.writeHead(statusCode, out);
    if (!this.whole) this.res.flushHeaders();
    this.resume = resume;
    return true;
  }

  /** Starts collecting a cacheable request's answer, unless its length says it cannot fit. */
  keepAnswer(out: OutgoingHttpHeaders): void {
    const max = this.d.stale.maxEntryBytes(this.r.model);
    const length = out['content-length'];
    if (max === 0 || (typeof length === 'number' && length > max)) return;
    this.keep = { contentType: headerText(out['content-type']), chunks: [], bytes: 0, max };
  }

  onData(chunk: Buffer): boolean {
    if (this.discard) return true;
    if (this.whole) {
      (this.chunks ??= []).push(chunk);
      return true;
    }
    const k = this.keep;
    if (k) {
      // The same buffers the client gets: copied once, into the entry, if the answer completes.
      k.bytes += chunk.length;
      if (k.bytes > k.max) this.keep = undefined;
      else k.chunks.push(chunk);
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
    const k = this.keep;
    if (k) {
      this.keep = undefined;
      if (this.whole) {
        k.chunks = c ?? [];
        for (const b of k.chunks) k.bytes += b.length;
      }
      this.d.stale.store(this.r.model, this.key!, { status: 200, contentType: k.contentType, chunks: k.chunks, bytes: k.bytes });
    }
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
    const timeout = isTimeout(code);
    if (this.gone) return void this.done({ ok: true, ...(this.status ? { status: this.status } : {}), cancelled: true }); // the client left; the instance did nothing wrong
    if (this.status === 0 || this.discard) {
      // Nothing reached the client yet: another instance may take it (a 503 being read already has its retry granted).
      const id = this.done({ ok: false, ...(this.discard ? { status: 503 } : {}), timeout });
      this.d.log.debug({ instance: id, code }, 'upstream request failed');
      if (this.discard || (isRetryable(code) && this.d.retries.mayRetry(this.target, this.tried))) return this.retry();
      return this.fail(upstreamError(id, timeout, `failed: ${code || 'error'}`));
    }
    this.done({ ok: false, status: this.status, timeout });
    this.res.destroy(); // cut the client's stream too: a truncated reply must not look complete
  }

  fail(err: unknown): void {
    failed(this.res, err, this.gone, this.d.log);
  }
}

/** The 503s the stale cache may stand in for: no ready instance (of the model or its fallback), or the queue turned the request away. */
const isRefusal = (err: unknown): err is HttpError => err instanceof HttpError && err.status === 503 && (err.code === 'no_ready_instance' || err.code === 'overloaded');

const headerText = (v: number | string | string[] | undefined): string | undefined => (v === undefined ? undefined : Array.isArray(v) ? v[0] : String(v));
