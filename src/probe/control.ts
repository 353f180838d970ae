import { deadline } from './deadline.js';
import { probeTargetsSchema, type ProbeReport, type ProbeReportAck, type ProbeTargets } from './types.js';

/** Control did not answer, or answered with something the agent cannot use. */
export class ControlError extends Error {}

export interface ControlClient {
  targets(signal: AbortSignal): Promise<ProbeTargets>;
  report(report: ProbeReport, signal: AbortSignal): Promise<ProbeReportAck>;
}

/** `fetch`, narrowed to what the agent calls it with (the TLS client of src/tls/client.ts is one). */
export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>;

export function createControlClient(opts: { url: string; token: string; timeoutMs: number; fetchImpl?: FetchLike }): ControlClient {
  const base = opts.url.replace(/\/+$/, '');
  const doFetch = opts.fetchImpl ?? fetch;

  /** The body of a 2xx answer; anything else throws a ControlError. */
  async function call(method: string, path: string, body: unknown, signal: AbortSignal): Promise<string> {
    const limit = deadline(opts.timeoutMs, signal);
    try {
      return await exchange(method, path, body, limit.signal);
    } catch (err) {
      if (err instanceof ControlError) throw err;
      throw new ControlError(`${method} ${path}: ${limit.timedOut() ? `timeout after ${opts.timeoutMs} ms` : fetchError(err)}`);
    } finally {
      limit.done();
    }
  }

  async function exchange(method: string, path: string, body: unknown, signal: AbortSignal): Promise<string> {
    const res = await doFetch(`${base}${path}`, {
      method,
      headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal,
    });
    const text = await res.text();
    if (!res.ok) throw new ControlError(`${method} ${path}: status ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`);
    return text;
  }

  return {
    async targets(signal) {
      const text = await call('GET', '/v1/probes/targets', undefined, signal);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new ControlError('GET /v1/probes/targets: answer is not JSON');
      }
      const parsed = probeTargetsSchema.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new ControlError(`GET /v1/probes/targets: bad answer at ${issue.path.join('.') || 'body'}: ${issue.message}`);
      }
      return parsed.data;
    },
    async report(report, signal) {
      const text = await call('POST', '/v1/probes/report', report, signal);
      // A 2xx means control took the results, whatever the body says.
      let targets: unknown;
      try {
        targets = (JSON.parse(text) as { targets?: unknown } | null)?.targets;
      } catch {
        // no JSON, no news of the version
      }
      return typeof targets === 'number' ? { targets } : {};
    },
  };
}

/** fetch hides the socket error in `cause`: "fetch failed" says nothing. A TLS client's errors already say what failed and why. */
function fetchError(err: unknown): string {
  const e = err as Error & { cause?: Error; reason?: unknown };
  if (e?.name === 'ControlLinkError' && typeof e.reason === 'string') return e.reason;
  return e.cause?.message || e.message || String(err);
}
