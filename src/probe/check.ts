import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { rootCertificates } from 'node:tls';
import type { Check } from '../config/schema.js';
import { deadline } from './deadline.js';

export type CheckOutcome = { ok: true; rttMs: number } | { ok: false; error: string };

/** What an HTTPS check trusts: the system's CAs, and these too (a private CA, as --ca gives the agent). */
export type CheckTls = { extraCa?: readonly (string | Buffer)[] };

/** Reads at most this much of a body (in characters) looking for `bodyContains`. */
const MAX_BODY = 1 << 20;
const MAX_ERROR = 200;

/**
 * Runs one check on a fresh connection (never a pooled one, so a dead server
 * is seen on the next check), within the check's timeout. Never throws.
 * `stop` cancels it (the agent is shutting down).
 */
export async function runCheck(check: Check, stop?: AbortSignal, tls?: CheckTls): Promise<CheckOutcome> {
  if (stop?.aborted) return { ok: false, error: 'probe stopped' };
  try {
    return await (check.type === 'http' ? httpCheck(check, stop, tls) : tcpCheck(check, stop));
  } catch (err) {
    return { ok: false, error: describe(err) }; // a URL or option Node refuses outright
  }
}

/** Checks with equal keys are the same probe: run once, applied to every endpoint that shares it. */
export function checkKey(check: Check): string {
  return check.type === 'http'
    ? JSON.stringify(['http', check.url, check.status, check.bodyContains ?? null, check.timeoutMs])
    : JSON.stringify(['tcp', check.host, check.port, check.timeoutMs]);
}

type HttpCheck = Extract<Check, { type: 'http' }>;
type TcpCheck = Extract<Check, { type: 'tcp' }>;

function httpCheck(check: HttpCheck, stop?: AbortSignal, tls?: CheckTls): Promise<CheckOutcome> {
  const limit = deadline(check.timeoutMs, stop);
  const url = new URL(check.url);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const t0 = performance.now();

  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: CheckOutcome) => {
      if (settled) return;
      settled = true;
      limit.done();
      req.destroy();
      resolve(outcome);
    };
    const fail = (err: unknown) =>
      settle({ ok: false, error: limit.timedOut() ? `timeout after ${check.timeoutMs} ms` : stop?.aborted ? 'probe stopped' : describe(err) });

    // agent: false is a one-off connection with `Connection: close`; redirects are not followed.
    const ca = url.protocol === 'https:' && tls?.extraCa?.length ? { ca: [...rootCertificates, ...tls.extraCa] } : {};
    const req = request(url, { method: 'GET', agent: false, signal: limit.signal, headers: { 'user-agent': 'arus-probe', accept: '*/*' }, ...ca });
    req.once('error', fail);
    req.once('response', (res: IncomingMessage) => {
      res.once('error', fail);
      res.once('close', () => fail(new Error('connection closed while reading the body')));
      if (res.statusCode !== check.status) return settle({ ok: false, error: `status ${res.statusCode} (want ${check.status})` });
      let body = '';
      let size = 0;
      const done = () => {
        if (check.bodyContains !== undefined && !body.includes(check.bodyContains))
          settle({ ok: false, error: `body lacks ${JSON.stringify(check.bodyContains)}` });
        else settle({ ok: true, rttMs: elapsed(t0) });
      };
      res.setEncoding('utf8'); // decodes characters split across chunks
      res.on('data', (chunk: string) => {
        size += chunk.length;
        if (check.bodyContains !== undefined) body += chunk;
        if (size >= MAX_BODY) done();
      });
      res.once('end', done);
    });
    req.end();
  });
}

function tcpCheck(check: TcpCheck, stop?: AbortSignal): Promise<CheckOutcome> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const sock = connect({ host: check.host, port: check.port });
    const settle = (outcome: CheckOutcome) => {
      clearTimeout(timer);
      stop?.removeEventListener('abort', onStop);
      sock.destroy();
      resolve(outcome);
    };
    const onStop = () => settle({ ok: false, error: 'probe stopped' });
    const timer = setTimeout(() => settle({ ok: false, error: `timeout after ${check.timeoutMs} ms` }), check.timeoutMs);
    stop?.addEventListener('abort', onStop, { once: true });
    sock.once('connect', () => settle({ ok: true, rttMs: elapsed(t0) }));
    sock.once('error', (err) => settle({ ok: false, error: describe(err) }));
  });
}

function elapsed(t0: number): number {
  return Math.round((performance.now() - t0) * 100) / 100;
}

/** Node's own messages are already short and precise ("connect ECONNREFUSED 127.0.0.1:9211"). */
export function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  let text = e?.message || e?.code || String(err);
  if (text === 'socket hang up') text = 'connection closed before a response (socket hang up)';
  else if (text === 'aborted') text = 'connection closed while reading the body';
  return text.length > MAX_ERROR ? `${text.slice(0, MAX_ERROR - 1)}…` : text;
}
