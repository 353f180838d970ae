import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../log.js';
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
      const s = createServer((req, res) => {
        if (opts.metrics && req.method === 'GET' && req.url === '/metrics') {
          void opts.metrics.text().then(
            (text) => res.writeHead(200, { 'content-type': opts.metrics!.contentType }).end(text),
            () => res.writeHead(500).end(),
          );
          return;
        }
        void opts.proxy.handle(req, res);
      });
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
      log.info({ host, port }, 'balancer listening');
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
