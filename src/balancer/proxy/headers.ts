// Headers across the proxy: the client's request headers as the instance
// gets them (hop-by-hop fields dropped, `x-forwarded-for` extended), and the
// instance's answer headers as the client gets them.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

// RFC 9110 §7.6.1 connection-specific fields, plus those the proxy sets itself.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'host', 'content-length']);

/** The client's headers for the instance, as undici's flat list, from the raw list (no header object is built). */
export function forwardHeaders(raw: readonly string[], length: number, client: string | undefined): string[] {
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
export function forwardHeaderObject(h: IncomingHttpHeaders, length: number, client: string | undefined): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in h) {
    const v = h[k];
    if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  }
  out['content-length'] = String(length);
  const xff = h['x-forwarded-for'];
  if (client) out['x-forwarded-for'] = xff ? `${Array.isArray(xff) ? xff.join(',') : xff}, ${client}` : client;
  return out;
}

/**
 * Copies an instance's raw answer headers into `out` for the client, its
 * `content-length` kept unless it was sent chunked. Returns the body's length
 * when it is known and the answer is not an event stream, else NaN.
 */
export function copyAnswerHeaders(raw: Buffer[] | string[], out: OutgoingHttpHeaders): number {
  let length = NaN;
  let chunked = false;
  let stream = false;
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
  return chunked || stream ? NaN : length;
}

/**
 * An instance's answer headers for the client, with `extra` on top. Its
 * `content-length` is kept when the body is passed on as it is (`keepLength`)
 * and was not sent chunked.
 */
export function responseHeaders(h: Record<string, string | string[] | undefined>, extra?: Record<string, string>, keepLength = true): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in h) {
    const v = h[k];
    if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  }
  if (keepLength && h['content-length'] !== undefined && h['transfer-encoding'] === undefined) out['content-length'] = h['content-length'];
  if (extra) for (const k in extra) out[k] = extra[k];
  return out;
}
