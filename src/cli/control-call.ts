// What a role asks control once at start (who its credential says it is, a
// balancer's configuration): asked again with jittered back-off until control
// answers, since control may start later or be away. A refusal (4xx) is final:
// asking again would not change it.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.js';
import type { ControlHttp } from '../tls/client.js';

/** Control answered, and refused: the status and its message. */
export class ControlRefused extends Error {}

/** GETs `path` from control as JSON, retrying failures of the link (200 ms doubling to 5 s, jittered) until it answers. */
export async function getFromControl<T>(link: { url: string; http: ControlHttp }, path: string, token: string, log: Logger): Promise<T> {
  let lastError: string | undefined;
  for (let attempt = 0; ; attempt++) {
    let res: Response;
    try {
      res = await link.http.fetch(`${link.url}${path}`, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), accept: 'application/json' }, signal: AbortSignal.timeout(5000) });
    } catch (err) {
      const message = (err as Error).message;
      if (message !== lastError) log.warn({ err: message, attempt }, 'cannot reach control yet; retrying with back-off');
      lastError = message;
      await sleep(Math.min(5000, 200 * 2 ** attempt) * (0.5 + Math.random() / 2));
      continue;
    }
    const text = await res.text();
    if (res.ok) return JSON.parse(text) as T;
    if (res.status >= 500) {
      lastError = `status ${res.status}`;
      await sleep(Math.min(5000, 200 * 2 ** attempt) * (0.5 + Math.random() / 2));
      continue;
    }
    throw new ControlRefused(`control (${link.url}) answered ${res.status} to GET ${path}: ${text.slice(0, 300)}`);
  }
}
