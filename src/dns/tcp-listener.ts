// TCP listeners: binding, and accepting connections within the caps (all
// listeners together, and per client address: more are closed at once,
// established ones are not touched), each closed after the idle timeout
// (RFC 7766 §6.2.3). What is read on a connection is tcp-stream.ts's.

import net from 'node:net';
import { serveTcpStream, type TcpStreamDeps } from './tcp-stream.js';

export type TcpAcceptorOptions = {
  readonly stats: { tcpConnections: number; tcpRejected: number; tcpIdleClosed: number };
  /** Close a connection after this long with nothing read or written. */
  readonly idleMs: number;
  /** Concurrent connections, all listeners together. */
  readonly maxConnections: number;
  /** Concurrent connections from one client address. */
  readonly maxPerClient: number;
  readonly caught: (err: unknown, what: string) => void;
  /** What every accepted connection is served with. */
  readonly stream: TcpStreamDeps;
};

export interface TcpAcceptor {
  /** The `net.Server` connection listener. */
  readonly onConnection: (socket: net.Socket) => void;
  /** Destroys every open connection and forgets them. */
  closeAll(): void;
}

export function createTcpAcceptor(opts: TcpAcceptorOptions): TcpAcceptor {
  const { stats, idleMs, maxConnections, maxPerClient, caught } = opts;
  const connections = new Set<net.Socket>();
  const perClient = new Map<string, number>();

  function onConnection(socket: net.Socket): void {
    socket.on('error', (err) => caught(err, 'tcp connection error'));
    const address = socket.remoteAddress ?? '';
    const mine = perClient.get(address) ?? 0;
    if (connections.size >= maxConnections || mine >= maxPerClient) {
      stats.tcpRejected++;
      socket.destroy();
      return;
    }
    stats.tcpConnections++;
    connections.add(socket);
    perClient.set(address, mine + 1);
    socket.on('close', () => {
      connections.delete(socket);
      const left = (perClient.get(address) ?? 1) - 1;
      if (left > 0) perClient.set(address, left);
      else perClient.delete(address);
    });
    socket.setTimeout(idleMs, () => {
      stats.tcpIdleClosed++;
      socket.destroy();
    });
    serveTcpStream(socket, { address, family: socket.remoteFamily }, opts.stream);
  }

  return {
    onConnection,
    closeAll() {
      for (const socket of connections) socket.destroy();
      connections.clear();
      perClient.clear();
    },
  };
}

/** Listens on `address:port` (IPv6-only for an IPv6 address) with `onConnection`. */
export function openTcp(address: string, port: number, onConnection: (socket: net.Socket) => void, caught: (err: unknown, what: string) => void): Promise<net.Server> {
  const server = net.createServer({ noDelay: true }, onConnection);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address, port, ipv6Only: net.isIPv6(address), exclusive: true }, () => {
      server.off('error', reject);
      server.on('error', (err) => caught(err, 'tcp server error'));
      resolve(server);
    });
  });
}
