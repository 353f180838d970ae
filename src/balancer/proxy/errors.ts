// Error answers: the errors a proxied request can end in, and the
// OpenAI-shaped JSON body (`{ error: { message, type, param, code } }`) each
// becomes for the client.
import type { ServerResponse } from 'node:http';
import type { Logger } from '../../log.js';

export class ClientGone extends Error {
  constructor() {
    super('client disconnected');
  }
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The answer for an attempt its instance failed: 504 for a timeout, else 502 (`detail` says what failed). */
export function upstreamError(id: string, timeout: boolean, detail: string): HttpError {
  return timeout ? new HttpError(504, `instance ${id} timed out`, 'upstream_timeout') : new HttpError(502, `instance ${id} ${detail}`, 'upstream_failed');
}

/** The answer to a request that could not be served; nothing when its client is gone. */
export function failed(res: ServerResponse, err: unknown, gone: boolean, log: Logger): void {
  if (gone || res.destroyed) return; // nobody left to answer
  if (res.headersSent) return void res.destroy();
  if (err instanceof HttpError) return sendError(res, err);
  log.error({ err }, 'proxy request failed');
  sendError(res, new HttpError(500, 'internal error', 'internal_error'));
}

export function sendError(res: ServerResponse, err: HttpError): void {
  const type = err.status === 404 ? 'NotFoundError' : err.status >= 500 ? 'ServiceUnavailableError' : 'BadRequestError';
  sendJson(res, err.status, { error: { message: err.message, type, param: null, code: err.code } }, err.headers);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
