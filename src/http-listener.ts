// Serves a fetch handler (Hono) over HTTP, or HTTPS when the listener has
// credentials (kept current by them: a certificate rotated on disk reaches
// new connections without a restart). Off loopback it refuses plain text
// unless the operator said so.
import { createServer as createHttpsServer } from 'node:https';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import { serve, type ServerType } from '@hono/node-server';
import type { ListenAddress } from './dns/server.js';
import { requireSecureListener } from './tls/plaintext.js';
import type { ServerCredentials } from './tls/server.js';

export type HttpListener = { url: string; stop: () => Promise<void> };

/** Listens on `listen` (port 0 picks a free one); `what` names the listener in a refusal. */
export async function listenHttp(
  fetch: Parameters<typeof serve>[0]['fetch'],
  listen: ListenAddress,
  o: { what: string; tls?: ServerCredentials; insecurePlaintext?: boolean },
): Promise<HttpListener> {
  requireSecureListener(o.what, listen, { tls: o.tls !== undefined, insecurePlaintext: o.insecurePlaintext });
  const tls = o.tls;
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve(
      { fetch, hostname: listen.address, port: listen.port, ...(tls ? { createServer: createHttpsServer, serverOptions: tls.options } : {}) },
      () => resolve(s),
    );
    s.once('error', reject);
  });
  if (tls) tls.attach(server as unknown as TlsServer);
  const { port } = server.address() as AddressInfo;
  const host = listen.address.includes(':') ? `[${listen.address}]` : listen.address;
  return {
    url: `${tls ? 'https' : 'http'}://${host}:${port}`,
    // Streams (events, snapshots) never end on their own: cut them, their clients reconnect.
    stop: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        (server as HttpServer).closeAllConnections?.();
      }),
  };
}
