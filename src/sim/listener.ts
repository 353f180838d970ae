import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

// The simulator's socket, as a process's would be: it listens, and on close
// every connection drops at once (open streams are cut), so a crash is
// refused connections rather than a graceful drain.

export interface SimListener {
  /** Listens on `port` (0: a free one); resolves with the port bound. */
  listen(port: number): Promise<number>;
  /** Stops listening and destroys every open connection; nothing when not listening. */
  close(): Promise<void>;
  readonly listening: boolean;
}

export function createListener(host: string, handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>): SimListener {
  let server: Server | undefined;
  let sockets = new Set<Socket>();

  return {
    async listen(port) {
      const s = createServer((req, res) => void handle(req, res));
      const conns = new Set<Socket>();
      s.on('connection', (sock) => {
        conns.add(sock);
        sock.once('close', () => conns.delete(sock));
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, host, () => {
          s.off('error', reject);
          resolve();
        });
      });
      server = s;
      sockets = conns;
      return (s.address() as AddressInfo).port;
    },
    async close() {
      const s = server;
      if (!s) return;
      server = undefined;
      const closed = new Promise<void>((resolve) => s.close(() => resolve()));
      for (const sock of sockets) sock.destroy();
      await closed;
    },
    get listening() {
      return server !== undefined;
    },
  };
}
