import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as TlsServer } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { ServerCredentials } from '../tls/server.js';
import type { Proxy, ProxyStats } from './proxy.js';

export type BalancerServerOptions = {
  /** Listen address; 127.0.0.1 unless set. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  proxy: Proxy;
  log: Logger;
  /** Serves GET /metrics (Prometheus text) when given. */
  metrics?: { text(): Promise<string>; contentType: string };
  /** HTTPS with these credentials (reloaded when their files change); plain HTTP unless set. */
  tls?: ServerCredentials;
  /** Serves GET /healthz (the balancer itself, its link to control, its instances) when given. */
  healthz?: () => BalancerHealth;
};

/** GET /healthz: the balancer runs (200); whether control is reached, and how many instances are ready. Apart from /health, which is "some instance ready". */
export type BalancerHealth = {
  ok: boolean;
  region: string;
  control: { connected: boolean; url: string | null };
  instances: { ready: number; total: number };
};

export interface BalancerServer {
  start(): Promise<{ port: number }>;
  /** Stops listening and cuts open connections (streams included). The proxy stays open: its owner closes it. */
  stop(): Promise<void>;
  /** Requests, retries, overloads, queue depth, ejections, recent latencies per instance. */
  stats(): ProxyStats;
  readonly port: number | undefined;
}

export function createBalancerServer(opts: BalancerServerOptions): BalancerServer {
  const log = opts.log.child({ component: 'balancer' });
  const host = opts.host ?? '127.0.0.1';
  let server: Server | undefined;
  let port: number | undefined;
  const sockets = new Set<Socket>();

  return {
    async start() {
      if (server) return { port: port! };
      const handler = (req: IncomingMessage, res: ServerResponse) => {
        if (opts.metrics && req.method === 'GET' && req.url === '/metrics') {
          void opts.metrics.text().then(
            (text) => res.writeHead(200, { 'content-type': opts.metrics!.contentType }).end(text),
            () => res.writeHead(500).end(),
          );
          return;
        }
        if (opts.healthz && req.method === 'GET' && (req.url === '/healthz' || req.url?.startsWith('/healthz?'))) {
          res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(opts.healthz()));
          return;
        }
        void opts.proxy.handle(req, res);
      };
      const s: Server = opts.tls ? createHttpsServer(opts.tls.options, handler) : createServer(handler);
      if (opts.tls) opts.tls.attach(s as unknown as TlsServer);
      // Generations outlast Node's default 5-minute request timeout.
      s.requestTimeout = 0;
      s.on('connection', (sock) => {
        sockets.add(sock);
        sock.once('close', () => sockets.delete(sock));
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(opts.port ?? 0, host, () => {
          s.off('error', reject);
          resolve();
        });
      });
      server = s;
      port = (s.address() as AddressInfo).port;
      log.info({ host, port, tls: opts.tls !== undefined }, 'balancer listening');
      return { port };
    },
    async stop() {
      const s = server;
      if (!s) return;
      server = undefined;
      port = undefined;
      const closed = new Promise<void>((resolve) => s.close(() => resolve()));
      for (const sock of sockets) sock.destroy();
      await closed;
    },
    stats: () => opts.proxy.stats(),
    get port() {
      return port;
    },
  };
}
