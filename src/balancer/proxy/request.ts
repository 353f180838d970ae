// What the proxy reads from a client: the route's kind of request, the body
// within its size limit, and the JSON fields that decide where it goes
// (`model`, a generation's token budget).
import type { IncomingMessage } from 'node:http';
import { blockHashes, CHARS_PER_TOKEN, renderPrompt, tokensOf } from '../../prompt/blocks.js';
import type { PromptKey, RequestKind } from '../types.js';
import { HttpError } from './errors.js';

export const ROUTES: Record<string, RequestKind> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completion',
  '/v1/embeddings': 'embeddings',
};

/** `tokens`: a generation's `max_tokens`, for pickers that estimate how long it runs; `prompt`, for the `prefix` strategy. */
export type ForwardRequest = { model: string; kind: RequestKind; tokens?: number; prompt?: PromptKey; path: string; body: Buffer };

/** A request body that names its model. */
export type ModelBody = Record<string, unknown> & { model: string };

const EMPTY = Buffer.alloc(0);

/**
 * The request body, read with plain listeners (this runs once per request).
 * A client that leaves is seen by the caller on the response's `close`.
 */
export function readBody(req: IncomingMessage, max: number, cb: (err: Error | undefined, body?: Buffer) => void): void {
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

/** The body as JSON with a non-empty string `model`, or the 400 that says what is wrong with it. */
export function parseBody(body: Buffer): ModelBody | HttpError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return new HttpError(400, 'body is not valid JSON', 'invalid_json');
  }
  const m = (parsed as { model?: unknown } | null)?.model;
  if (typeof m !== 'string' || m === '') return new HttpError(400, 'model: a non-empty string is required', 'invalid_request');
  return parsed as ModelBody;
}

/** A generation's token budget, when the body gives one (`max_tokens`, or the newer `max_completion_tokens`). */
export function maxTokens(body: Record<string, unknown>): number | undefined {
  const n = body.max_tokens ?? body.max_completion_tokens;
  return typeof n === 'number' && n > 0 && Number.isFinite(n) ? n : undefined;
}

/** The most of a prompt the prefix strategy reads: 32k tokens (a longer one is scored on this prefix). */
export const PROMPT_CHARS = 32_768 * CHARS_PER_TOKEN;

/**
 * A generation's prompt as the KV cache sees it: its blocks' names (of at
 * most PROMPT_CHARS), its tokens, and the client's affinity hint: an
 * `x-session-id` header, else the OpenAI `user` field. Undefined for a body
 * with no prompt.
 */
export function promptKey(body: Record<string, unknown>, session: string | string[] | undefined, bodyBytes: number): PromptKey | undefined {
  const text = renderPrompt(body, PROMPT_CHARS);
  if (text === undefined) return undefined;
  // Cut at the cap: the rest of the prompt is there, counted from the body's size.
  const tokens = text.length < PROMPT_CHARS ? tokensOf(text) : Math.max(tokensOf(text), Math.ceil(bodyBytes / CHARS_PER_TOKEN));
  const hint = typeof session === 'string' && session !== '' ? `s:${session.slice(0, 256)}` : typeof body.user === 'string' && body.user !== '' ? `u:${body.user.slice(0, 256)}` : undefined;
  return { hashes: blockHashes(text), tokens, ...(hint !== undefined ? { affinity: hint } : {}) };
}
