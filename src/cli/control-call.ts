// What a role asks control once at start (who its credential says it is, a
// balancer's configuration): asked again with jittered back-off until some
// replica answers, since control may start later or be away; each failure
// moves to the next replica. A refusal (4xx) is final: asking again would not
// change it.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.js';
import type { ControlHttp } from '../tls/client.js';

/** Control answered, and refused: the status and its message. */
export class ControlRefused extends Error {}

/** One replica (`url`) or several (`urls`, asked in turn), and the client that reaches them. */
export type ControlTarget = { url?: string; urls?: readonly string[]; http: Pick<ControlHttp, 'fetch'> };

/**
 * GETs `path` from control as JSON, retrying failures of the link and 5xx
 * answers (200 ms doubling to 5 s, jittered), each try on the next replica,
 * until one answers.
 */
export async function getFromControl<T>(link: ControlTarget, path: string, token: string, log: Logger, opts: { sleep?: (ms: number) => Promise<unknown> } = {}): Promise<T> {
  const urls = link.urls ?? (link.url !== undefined ? [link.url] : []);
  if (urls.length === 0) throw new Error('no control URL');
  const wait = opts.sleep ?? sleep;
  let lastError: string | undefined;
  for (let attempt = 0; ; attempt++) {
    const url = urls[attempt % urls.length];
    const backoff = () => wait(Math.min(5000, 200 * 2 ** Math.min(attempt, 10)) * (0.5 + Math.random() / 2));
    let res: Response;
    try {
      res = await link.http.fetch(`${url}${path}`, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), accept: 'application/json' }, signal: AbortSignal.timeout(5000) });
    } catch (err) {
      const message = (err as Error).message;
      if (message !== lastError) log.warn({ err: message, attempt, ...(urls.length > 1 ? { control: url } : {}) }, 'cannot reach control yet; retrying with back-off');
      lastError = message;
      await backoff();
      continue;
    }
    const text = await res.text();
    if (res.ok) return JSON.parse(text) as T;
    if (res.status >= 500) {
      lastError = `status ${res.status}`;
      await backoff();
      continue;
    }
    throw new ControlRefused(`control (${url}) answered ${res.status} to GET ${path}: ${text.slice(0, 300)}`);
  }
}
