// The DNS server's lifecycle: one UDP and one TCP listener per listen address
// (the same port for both, also when it is ephemeral), started and stopped
// together. What each listener does is udp-listener.ts's and tcp-listener.ts's.

import type { Socket } from 'node:dgram';
import type { AddressInfo, Server } from 'node:net';
import type { Logger } from '../log.js';
import type { Responder } from './responder.js';
import { createTcpAcceptor, openTcp, tcpFd } from './tcp-listener.js';
import { openUdp, stopReceiving, udpFd } from './udp-listener.js';

export type ListenAddress = { readonly address: string; readonly port: number };

export type DnsServerOptions = {
  /** One UDP and one TCP listener per entry; port 0 picks a free port, the same for both. */
  listen: readonly ListenAddress[];
  responder: Responder;
  log: Logger;
  /**
   * Close a TCP connection after this long with nothing read or written (RFC 7766 §6.2.3), while at
   * most half of maxTcpConnections are open; above that it falls linearly to tcpIdleFloorMs at the cap. Default 10 s.
   */
  tcpIdleMs?: number;
  /** The TCP idle timeout when maxTcpConnections are open (at most tcpIdleMs). Default 1 s. */
  tcpIdleFloorMs?: number;
  /** A message begun must arrive whole within this long, or the connection is closed (slow senders). Default 5 s. */
  tcpMessageMs?: number;
  /** Concurrent TCP connections, all listeners together; at the cap the longest-idle one is closed for a new one. Default 1,000. */
  maxTcpConnections?: number;
  /** Concurrent TCP connections from one client address; at the cap its longest-idle one is closed for a new one. Default 32. */
  maxTcpPerClient?: number;
  /** Replies queued for a client that does not read them before we stop reading its queries. Default 64 KiB. */
  tcpMaxQueued?: number;
  /** Requested UDP socket buffer size in bytes (the kernel may cap it). Default 4 MiB. */
  udpBufferSize?: number;
  /**
   * The sockets another thread bound for `listen` (its `descriptors()`, entry for entry): this
   * server answers on them too, instead of binding its own (src/dns/workers/).
   */
  inherit?: readonly SocketDescriptors[];
  /** The node's open TCP connections, counted by every server that shares its sockets (slot 0): the cap is the node's. */
  tcpOpenConnections?: Int32Array;
};

/** A listen address's UDP socket and TCP listener, as file descriptors. */
export type SocketDescriptors = { readonly udp: number; readonly tcp: number };

export type DnsServerStats = {
  udpMessages: number;
  tcpMessages: number;
  /** TCP connections accepted. */
  tcpConnections: number;
  /** TCP connections open now (a gauge). */
  tcpOpen: number;
  /** Connections refused (closed at once) at maxTcpConnections or maxTcpPerClient, none being idle to make room. */
  tcpRejected: number;
  /** Idle connections closed to admit a new one at maxTcpConnections or maxTcpPerClient (RFC 7766 §6.2.3). */
  tcpEvicted: number;
  /** TCP queries that arrived before the one ahead of them on their connection was answered (completed in the same read). */
  tcpPipelined: number;
  /** Connections closed for a bad frame (too short, or no reply possible). */
  tcpBadFrames: number;
  /** Connections closed after the idle timeout in force (tcpIdleMs, shorter as connections fill). */
  tcpIdleClosed: number;
  /** Connections closed because a message took longer than tcpMessageMs to arrive. */
  tcpSlowClosed: number;
  /** Exceptions and socket errors caught; never thrown out of a handler. */
  errors: number;
};

export interface DnsServer {
  /** Binds every listener; resolves with the bound addresses. */
  start(): Promise<{ udp: AddressInfo[]; tcp: AddressInfo[] }>;
  /** Closes every listener and connection: their descriptors are closed before it returns (the promise waits for the close callbacks). */
  stop(): Promise<void>;
  /** Stops answering over UDP, sockets left open: what every thread sharing them does before any closes them. */
  quiesce(): void;
  /** The bound sockets' file descriptors, in `listen` order, for servers in other threads (`inherit`). */
  descriptors(): SocketDescriptors[];
  readonly stats: DnsServerStats;
}

const BIND_ATTEMPTS = 20;

/** Every counter at 0: what a server starts with. */
export function createDnsServerStats(): DnsServerStats {
  return {
    udpMessages: 0,
    tcpMessages: 0,
    tcpConnections: 0,
    tcpOpen: 0,
    tcpRejected: 0,
    tcpEvicted: 0,
    tcpPipelined: 0,
    tcpBadFrames: 0,
    tcpIdleClosed: 0,
    tcpSlowClosed: 0,
    errors: 0,
  };
}

/** DNS over UDP and TCP (2-octet length framing, pipelining answered in order) on each listen address. */
export function createDnsServer(opts: DnsServerOptions): DnsServer {
  const log = opts.log.child({ component: 'dns' });
  const { responder } = opts;
  const stats = createDnsServerStats();
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
    idleFloorMs: opts.tcpIdleFloorMs ?? 1000,
    maxConnections: opts.maxTcpConnections ?? 1000,
    maxPerClient: opts.maxTcpPerClient ?? 32,
    openConnections: opts.tcpOpenConnections,
    caught,
    stream: { responder, stats, maxQueued: opts.tcpMaxQueued ?? 64 * 1024, messageMs: opts.tcpMessageMs ?? 5000, caught },
  });

  async function listenPair(address: string, port: number, inherited?: SocketDescriptors): Promise<void> {
    if (inherited) {
      const socket = await openUdp(address, port, udpDeps, inherited.udp);
      udpSockets.push(socket);
      tcpServers.push(await openTcp(address, port, acceptor.onConnection, caught, inherited.tcp));
      return;
    }
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
        for (const [i, { address, port }] of opts.listen.entries()) await listenPair(address, port, opts.inherit?.[i]);
      } catch (err) {
        await this.stop();
        throw err;
      }
      const udp = udpSockets.map((s) => s.address());
      const tcp = tcpServers.map((s) => s.address() as AddressInfo);
      if (!opts.inherit) log.info({ udp: udp.map(fmt), tcp: tcp.map(fmt) }, 'dns listening');
      return { udp, tcp };
    },
    descriptors: () => udpSockets.map((s, i) => ({ udp: udpFd(s), tcp: tcpFd(tcpServers[i]) })),
    quiesce: () => udpSockets.forEach(stopReceiving),
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
