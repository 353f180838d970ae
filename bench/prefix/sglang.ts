// sglang-cache_aware (re-implementation): SGLang's router `cache_aware`
// policy as its documentation describes it, as a small HTTP proxy for the
// bench. Source: "Router for Data Parallelism", sgl-project/sglang
// docs/router/router.md (commit 00b08c497f07, served as
// https://docs.sglang.ai/router/router.html), "Cache-Aware Load-Balancing
// Router" and "Configuration Parameters"; the request text and queue
// bookkeeping as in sgl-router/src/router.rs at the same commit.
//
// - Load: pending requests per worker (routed, not yet answered).
//   Imbalanced when (max − min) > balance_abs_threshold (32) AND
//   max > balance_rel_threshold (1.0001) × min: then the shortest queue.
// - Otherwise the approximate tree: the worker whose tree matches the
//   longest prefix of the request text; if matched / text characters >
//   cache_threshold (0.5) that worker, else the worker with the smallest
//   tree (most available cache).
// - Either way the text is inserted into the chosen worker's tree.
// - Every eviction_interval (60 s) each tree larger than max_tree_size
//   (16 777 216 characters) loses least-recently-used leaves until it fits.
// - The text is the chat `messages` as JSON text (`prompt` for completions).
import { createServer, request as httpRequest, Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRadixTree, type RadixTree } from './radix-tree.js';

export type CacheAwareOptions = {
  cacheThreshold?: number;
  balanceAbsThreshold?: number;
  balanceRelThreshold?: number;
  evictionIntervalMs?: number;
  maxTreeSize?: number;
};

export const SGLANG_DEFAULTS = { cacheThreshold: 0.5, balanceAbsThreshold: 32, balanceRelThreshold: 1.0001, evictionIntervalMs: 60_000, maxTreeSize: 16_777_216 };

export interface CacheAware {
  /** The worker for `text`; counts it as pending there until `done`. */
  select(text: string): number;
  done(worker: number): void;
  /** One eviction cycle (the proxy runs it every evictionIntervalMs). */
  evict(): void;
  readonly pending: readonly number[];
}

export function createCacheAware(workers: number, opts: CacheAwareOptions = {}): CacheAware {
  const o = { ...SGLANG_DEFAULTS, ...opts };
  const trees: RadixTree[] = Array.from({ length: workers }, () => createRadixTree());
  const pending = new Array<number>(workers).fill(0);
  const argmin = (f: (i: number) => number) => pending.reduce((best, _, i) => (f(i) < f(best) ? i : best), 0);
  return {
    pending,
    select(text) {
      const max = Math.max(...pending);
      const min = Math.min(...pending);
      let chosen: number;
      if (max - min > o.balanceAbsThreshold && max > o.balanceRelThreshold * min) chosen = argmin((i) => pending[i]);
      else {
        let best = 0;
        let matched = -1;
        trees.forEach((t, i) => {
          const m = t.match(text);
          if (m > matched) [best, matched] = [i, m];
        });
        chosen = matched / text.length > o.cacheThreshold ? best : argmin((i) => trees[i].size);
      }
      pending[chosen]++;
      trees[chosen].insert(text, Date.now());
      return chosen;
    },
    done(worker) {
      pending[worker] = Math.max(0, pending[worker] - 1);
    },
    evict() {
      for (const t of trees) t.evictBySize(o.maxTreeSize);
    },
  };
}

/** The router's request text: `messages` as JSON text, else the completion prompt. */
function requestText(body: Buffer): string {
  try {
    const json = JSON.parse(body.toString('utf8')) as { messages?: unknown; prompt?: unknown };
    if (json.messages !== undefined) return JSON.stringify(json.messages);
    return typeof json.prompt === 'string' ? json.prompt : '';
  } catch {
    return '';
  }
}

/** The proxy in front of `ports`: generations by the policy, anything else to the first worker (the router's route_to_first). */
export function startCacheAwareProxy(ports: number[], opts: CacheAwareOptions = {}): Promise<{ port: number; stop(): Promise<void> }> {
  const policy = createCacheAware(ports.length, opts);
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const evictions = setInterval(() => policy.evict(), opts.evictionIntervalMs ?? SGLANG_DEFAULTS.evictionIntervalMs);
  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer, worker: number, onEnd?: () => void) => {
    const headers = { ...req.headers, host: `127.0.0.1:${ports[worker]}`, 'content-length': String(body.length) };
    let complete = false;
    const up = httpRequest({ host: '127.0.0.1', port: ports[worker], method: req.method, path: req.url, headers, agent }, (r) => {
      res.writeHead(r.statusCode ?? 502, { ...r.headers, 'x-bench-instance': `i${worker}` });
      r.pipe(res);
      r.once('end', () => (complete = true));
      r.once('close', () => onEnd?.());
    });
    up.once('error', () => {
      onEnd?.();
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    // A client that goes away cancels the generation (and frees its sim slot); a finished one leaves the socket to the agent.
    res.once('close', () => complete || up.destroy());
    up.end(body);
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const generation = req.method === 'POST' && (req.url === '/v1/chat/completions' || req.url === '/v1/completions');
      if (!generation) return forward(req, res, body, 0);
      const worker = policy.select(requestText(body));
      let released = false;
      forward(req, res, body, worker, () => {
        if (!released) policy.done(worker);
        released = true;
      });
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as { port: number }).port,
        stop: () => {
          clearInterval(evictions);
          server.closeAllConnections();
          agent.destroy();
          return new Promise<void>((done) => server.close(() => done()));
        },
      }),
    ),
  );
}
