// `arus balancer`'s link to control's replicas. Its configuration comes from
// any one of them: `GET /v1/balancers/{region}` polled every `pollMs` with
// `If-None-Match`, so an unchanged section costs a 304; on a failure the next
// replica is polled, after a jittered back-off. The ETag is a digest of the
// section itself, the same on every replica, so moving to another replica
// does not fetch it again. Each capacity report goes to every replica, since
// any of them may lead next.
import { balancerSchema, type BalancerDoc } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { CapacitySink, ControlStatus } from './role.js';

export type ControlLinkOptions = {
  /** Every replica's API (one is fine). */
  urls: readonly string[];
  region: string;
  token: string;
  /** `fetch` unless set (the TLS client of src/tls/client.ts in production). */
  fetchImpl?: (url: string, init?: RequestInit) => Promise<Response>;
  log: Logger;
  /** Between two polls of the configuration. Default 250 ms: a change is live within a second. */
  pollMs?: number;
  /** Each request's deadline. Default 2 s. */
  timeoutMs?: number;
  /** After a failed poll: from `minMs`, doubling to `maxMs`, each jittered to 50–100 %. Default 200 ms to 5 s. */
  backoff?: { minMs?: number; maxMs?: number };
  random?: () => number;
};

export interface BalancerControlLink {
  /** Polls until `stop`, handing every new (valid) section to `apply`. */
  follow(apply: (doc: BalancerDoc) => void): void;
  /** Sends a capacity report to every replica; rejects only when none took it. */
  report: CapacitySink;
  /** Whether the last poll was answered, and by which replica. */
  status: ControlStatus;
  stop(): Promise<void>;
}

export function createBalancerControlLink(opts: ControlLinkOptions): BalancerControlLink {
  const { log, region } = opts;
  const urls = opts.urls.map((u) => u.replace(/\/+$/, ''));
  if (urls.length === 0) throw new Error('the balancer needs a control URL');
  const doFetch = opts.fetchImpl ?? fetch;
  const pollMs = opts.pollMs ?? 250;
  const timeoutMs = opts.timeoutMs ?? 2000;
  const minMs = opts.backoff?.minMs ?? 200;
  const maxMs = opts.backoff?.maxMs ?? 5000;
  const random = opts.random ?? Math.random;
  const auth: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  const path = `/v1/balancers/${encodeURIComponent(region)}`;
  const stopper = new AbortController();

  let at = 0;
  let connected = false;
  let etag: string | undefined;
  /** The last complaint logged, so a failure that repeats is logged once. */
  let told: string | undefined;
  let loop: Promise<void> | undefined;

  const tell = (level: 'warn' | 'info', what: string, fields: Record<string, unknown>) => {
    if (told === what) return;
    told = what;
    log[level]({ ...fields, control: urls[at] }, what);
  };

  /** One poll of the current replica: true when it answered (changed, unchanged, or "no section"). */
  async function poll(apply: (doc: BalancerDoc) => void): Promise<boolean> {
    const res = await doFetch(`${urls[at]}${path}`, { headers: { ...auth, accept: 'application/json', ...(etag ? { 'if-none-match': etag } : {}) }, signal: AbortSignal.any([stopper.signal, AbortSignal.timeout(timeoutMs)]) });
    if (res.status === 304) return void (await res.body?.cancel()), true;
    const text = await res.text();
    if (res.status === 404) {
      tell('warn', 'control has no balancer section for this region now; keeping the last configuration', { region, answer: text.slice(0, 200) });
      return true;
    }
    if (res.status !== 200) throw new Error(`status ${res.status}: ${text.slice(0, 200)}`);
    const parsed = balancerSchema.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error(`a balancer section this balancer cannot read: ${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message}`);
    etag = res.headers.get('etag') ?? undefined;
    told = undefined;
    apply(parsed.data);
    return true;
  }

  async function run(apply: (doc: BalancerDoc) => void): Promise<void> {
    for (let failures = 0; !stopper.signal.aborted; ) {
      let wait = pollMs;
      try {
        await poll(apply);
        if (!connected && failures > 0) log.info({ control: urls[at] }, 'control reached again');
        connected = true;
        failures = 0;
      } catch (err) {
        if (stopper.signal.aborted) break;
        const reason = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
        if (connected) log.warn({ control: urls[at], err: reason, ...(urls.length > 1 ? { next: urls[(at + 1) % urls.length] } : {}) }, 'lost control: serving the last configuration, polling the next replica');
        else tell('warn', 'cannot reach control: serving the last configuration', { err: reason });
        connected = false;
        at = (at + 1) % urls.length;
        wait = Math.min(maxMs, minMs * 2 ** Math.min(failures++, 20)) * (0.5 + random() / 2);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait);
        stopper.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  }

  async function reportTo(url: string, body: string): Promise<void> {
    const res = await doFetch(`${url}/v1/capacity`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body, signal: AbortSignal.any([stopper.signal, AbortSignal.timeout(timeoutMs)]) });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`${url}: status ${res.status}`);
  }

  return {
    follow(apply) {
      loop ??= run(apply);
    },
    async report(r) {
      const body = JSON.stringify(r);
      const outcomes = await Promise.allSettled(urls.map((u) => reportTo(u, body)));
      const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      for (const f of failed) log.debug({ err: (f.reason as Error).message }, 'capacity report not taken by this replica');
      if (failed.length === urls.length) throw new Error(`no replica took the capacity report: ${(failed[0].reason as Error).message}`);
    },
    status: () => ({ connected, url: urls[at] }),
    async stop() {
      stopper.abort();
      await loop;
    },
  };
}
