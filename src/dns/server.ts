// The DNS server's lifecycle: one UDP and one TCP listener per listen address
// (the same port for both, also when it is ephemeral), started and stopped
// together. What each listener does is udp-listener.ts's and tcp-listener.ts's.

import type { Socket } from 'node:dgram';
import type { AddressInfo, Server } from 'node:net';
import type { Logger } from '../log.js';
import type { Responder } from './responder.js';
import { createTcpAcceptor, openTcp } from './tcp-listener.js';
import { openUdp } from './udp-listener.js';

export type ListenAddress = { readonly address: string; readonly port: number };

export type DnsServerOptions = {
  /** One UDP and one TCP listener per entry; port 0 picks a free port, the same for both. */
  listen: readonly ListenAddress[];
  responder: Responder;
  log: Logger;
  /** Close a TCP connection after this long with nothing read or written (RFC 7766 §6.2.3). Default 10 s. */
  tcpIdleMs?: number;
  /** A message begun must arrive whole within this long, or the connection is closed (slow senders). Default 5 s. */
  tcpMessageMs?: number;
  /** Concurrent TCP connections, all listeners together; more are closed at once. Default 1,000. */
  maxTcpConnections?: number;
  /** Concurrent TCP connections from one client address; more are closed at once. Default 32. */
  maxTcpPerClient?: number;
  /** Replies queued for a client that does not read them before we stop reading its queries. Default 64 KiB. */
  tcpMaxQueued?: number;
  /** Requested UDP socket buffer size in bytes (the kernel may cap it). Default 4 MiB. */
  udpBufferSize?: number;
};

export type DnsServerStats = {
  udpMessages: number;
  tcpMessages: number;
  tcpConnections: number;
  /** Connections closed at once because of maxTcpConnections or maxTcpPerClient. */
  tcpRejected: number;
  /** Connections closed for a bad frame (too short, or no reply possible). */
  tcpBadFrames: number;
  /** Connections closed after tcpIdleMs idle. */
  tcpIdleClosed: number;
  /** Connections closed because a message took longer than tcpMessageMs to arrive. */
  tcpSlowClosed: number;
  /** Exceptions and socket errors caught; never thrown out of a handler. */
  errors: number;
};

export interface DnsServer {
  /** Binds every listener; resolves with the bound addresses. */
  start(): Promise<{ udp: AddressInfo[]; tcp: AddressInfo[] }>;
  /** Closes every listener and connection. */
  stop(): Promise<void>;
  readonly stats: DnsServerStats;
}

const BIND_ATTEMPTS = 20;

/** DNS over UDP and TCP (2-octet length framing, pipelining answered in order) on each listen address. */
export function createDnsServer(opts: DnsServerOptions): DnsServer {
  const log = opts.log.child({ component: 'dns' });
  const { responder } = opts;
  const stats: DnsServerStats = {
    udpMessages: 0,
    tcpMessages: 0,
    tcpConnections: 0,
    tcpRejected: 0,
    tcpBadFrames: 0,
    tcpIdleClosed: 0,
    tcpSlowClosed: 0,
    errors: 0,
  };
  const udpSockets: Socket[] = [];
  const tcpServers: Server[] = [];

  function caught(err: unknown, what: string): void {
    stats.errors++;
    log.debug({ err }, what);
  }

  const udpDeps = { responder, stats, bufferSize: opts.udpBufferSize ?? 4 * 1024 * 1024, log, caught };
  const acceptor = createTcpAcceptor({
    stats,
    idleMs: opts.tcpIdleMs ?? 10_000,
    maxConnections: opts.maxTcpConnections ?? 1000,
    maxPerClient: opts.maxTcpPerClient ?? 32,
    caught,
    stream: { responder, stats, maxQueued: opts.tcpMaxQueued ?? 64 * 1024, messageMs: opts.tcpMessageMs ?? 5000, caught },
  });

  async function listenPair(address: string, port: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const socket = await openUdp(address, port, udpDeps);
      const bound = socket.address().port;
      try {
        const tcp = await openTcp(address, bound, acceptor.onConnection, caught);
        udpSockets.push(socket);
        tcpServers.push(tcp);
        return;
      } catch (err) {
        socket.close();
        // An ephemeral UDP port whose TCP twin is taken: try another.
        if (port !== 0 || attempt >= BIND_ATTEMPTS || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      }
    }
  }

  return {
    stats,
    async start() {
      try {
        for (const { address, port } of opts.listen) await listenPair(address, port);
      } catch (err) {
        await this.stop();
        throw err;
      }
      const udp = udpSockets.map((s) => s.address());
      const tcp = tcpServers.map((s) => s.address() as AddressInfo);
      log.info({ udp: udp.map(fmt), tcp: tcp.map(fmt) }, 'dns listening');
      return { udp, tcp };
    },
    async stop() {
      acceptor.closeAll();
      await Promise.all([
        ...udpSockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
        ...tcpServers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
      ]);
      const closed = udpSockets.length + tcpServers.length;
      udpSockets.length = 0;
      tcpServers.length = 0;
      if (closed > 0) log.info('dns stopped');
    },
  };
}

const fmt = (a: AddressInfo) => (a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
