// The batching path: embeddings calls the batcher (batch.ts) merged go
// upstream as one promise-based exchange — admission, the queue, retries up
// to the response headers — and the whole answer is read back to be split.
// Only batched calls come here; the callback path (call.ts) is the hot one.
import type { IncomingMessage } from 'node:http';
import type { Dispatcher } from 'undici';
import { createBatcher, type BatchResponse } from '../batch.js';
import { OverloadedError } from '../queue.js';
import type { InstanceState, Work } from '../types.js';
import { HttpError, upstreamError } from './errors.js';
import { forwardHeaderObject, responseHeaders } from './headers.js';
import type { ProxyParts } from './parts.js';
import type { ForwardRequest } from './request.js';
import { errCode, isRetryable, isTimeout } from './retries.js';

export type BatchPathOptions = ProxyParts & { windowMs: number; maxBatch: number };

export interface BatchPath {
  /** Queues an embeddings call for batching; undefined when it cannot be batched (send it alone). */
  submit(parsed: Record<string, unknown>, req: IncomingMessage, r: ForwardRequest, signal: AbortSignal): Promise<BatchResponse> | undefined;
  /** Upstream calls sent, and the client calls they carried. */
  stats(): { batches: number; calls: number };
}

type BatchCtx = { req: IncomingMessage; r: ForwardRequest; parsed: Record<string, unknown> };

type Exchanged = { s: InstanceState; up: Dispatcher.ResponseData; ms: () => number; headers: Record<string, string>; work: Work };

export function createBatchPath(opts: BatchPathOptions): BatchPath {
  const batcher = createBatcher<BatchCtx>({ windowMs: opts.windowMs, maxBatch: opts.maxBatch, send: (body, signal, ctx) => sendBatch(opts, body, signal, ctx) });
  return {
    submit(parsed, req, r, signal) {
      // Calls with other credentials or another path are never merged; the batcher keys the options itself.
      const auth = req.headers.authorization ?? '';
      return batcher.submit(parsed, { key: `${r.path}\n${auth}`, signal, ctx: { req, r, parsed } });
    },
    stats: () => batcher.stats(),
  };
}

/** One (merged) embeddings call for the batcher: the whole answer, buffered, to be split. */
async function sendBatch(deps: BatchPathOptions, body: Record<string, unknown>, signal: AbortSignal, ctx: BatchCtx | undefined): Promise<BatchResponse> {
  if (!ctx) throw new Error('batch without a caller');
  const buf = body === ctx.parsed ? ctx.r.body : Buffer.from(JSON.stringify(body));
  const headersFor = (length: number) => {
    const h = forwardHeaderObject(ctx.req.headers, length, ctx.req.socket.remoteAddress);
    delete h['accept-encoding']; // the answer is parsed and split here
    return h;
  };
  const { s, up, ms, headers, work } = await exchange(deps, { ...ctx.r, body: buf }, headersFor, signal);
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of up.body) chunks.push(chunk as Buffer);
    deps.outcomes.record(s, { ok: up.statusCode < 500, status: up.statusCode, durationMs: ms(), work });
    return { status: up.statusCode, headers: responseHeaders(up.headers, headers, false), body: Buffer.concat(chunks) };
  } catch (err) {
    up.body.destroy();
    const timeout = isTimeout(errCode(err));
    if (signal.aborted) deps.outcomes.record(s, { ok: true, status: up.statusCode, durationMs: ms(), cancelled: true, work });
    else deps.outcomes.record(s, { ok: false, status: up.statusCode, durationMs: ms(), timeout, work });
    throw upstreamError(s.instance.id, timeout, 'failed mid-answer');
  }
}

/**
 * Admission, the upstream request and its retries, up to the response
 * headers. Falls back to the configured model's pool when the requested
 * model has no live instance or its pool is full; `headers` then names the fallback.
 */
async function exchange(
  deps: BatchPathOptions,
  r: ForwardRequest,
  headersFor: (length: number) => Record<string, string | string[]>,
  signal: AbortSignal,
): Promise<Exchanged> {
  const { dispatch, outcomes, retries } = deps;
  const admitted = dispatch.admit(r);
  if (admitted instanceof HttpError) throw admitted;
  const tried: string[] = [];
  const { s: first, target } = await firstSlot(deps, r, admitted, tried, signal);
  let s = first;
  for (;;) {
    if (!s) throw new HttpError(502, 'every instance tried failed', 'upstream_failed');
    tried.push(s.instance.id);
    const work: Work = { kind: target.kind, tokens: target.tokens, at: deps.now() };
    deps.pool.acquire(s, work);
    const t0 = performance.now();
    const ms = () => performance.now() - t0;

    let up;
    try {
      up = await dispatch.upstream(s.instance.url).request({ path: target.path, method: 'POST', headers: headersFor(target.body.length), body: target.body, signal });
    } catch (err) {
      const code = errCode(err);
      const timeout = isTimeout(code);
      if (signal.aborted) {
        outcomes.record(s, { ok: true, durationMs: ms(), cancelled: true, work }); // the client left; the instance did nothing wrong
        throw err;
      }
      outcomes.record(s, { ok: false, durationMs: ms(), timeout, work });
      deps.log.debug({ instance: s.instance.id, code }, 'upstream request failed');
      if (isRetryable(code) && retries.mayRetry(target, tried)) {
        s = retries.next(target, tried);
        continue;
      }
      throw upstreamError(s.instance.id, timeout, `failed: ${code || 'error'}`);
    }

    if (up.statusCode === 503 && retries.mayRetry(target, tried)) {
      await up.body.dump().catch(() => {});
      outcomes.record(s, { ok: false, status: 503, durationMs: ms(), work });
      s = retries.next(target, tried);
      continue;
    }
    const headers: Record<string, string> = { 'x-arus-instance': s.instance.id };
    if (target !== r) headers['x-arus-fallback'] = deps.overload.served(r, target);
    return { s, up, ms, headers, work };
  }
}

/** The first attempt's instance: from the wait queue, or the fallback model's when the queue turns the request away. */
async function firstSlot(
  deps: BatchPathOptions,
  r: ForwardRequest,
  target: ForwardRequest,
  tried: readonly string[],
  signal: AbortSignal,
): Promise<{ s: InstanceState | undefined; target: ForwardRequest }> {
  const { dispatch, overload } = deps;
  try {
    return { s: await overload.queue.wait(() => dispatch.take(target.model, target.kind, tried, target.tokens), signal, `${target.model}|${target.kind}|`), target };
  } catch (err) {
    if (!(err instanceof OverloadedError)) throw err;
    // The model's pool is exhausted: its fallback's, if that has a free slot now.
    const f = overload.overflowFor(r, target);
    const s = f && dispatch.take(f.model, f.kind, tried, f.tokens);
    if (!f || !s) throw overload.refuse(err);
    return { s, target: f };
  }
}
