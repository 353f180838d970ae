import dgram from 'node:dgram';
import net, { type AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import type { Responder } from './responder.js';

export type ListenAddress = { readonly address: string; readonly port: number };

export type DnsServerOptions = {
  /** One UDP and one TCP listener per entry; port 0 picks a free port, the same for both. */
  listen: readonly ListenAddress[];
  responder: Responder;
  log: Logger;
  /** Close a TCP connection after this long without a complete query (RFC 7766 §6.2.3). Default 10 s. */
  tcpIdleMs?: number;
  /** Concurrent TCP connections, all listeners together; more are closed at once. Default 1,000. */
  maxTcpConnections?: number;
  /** Requested UDP socket buffer size in bytes (the kernel may cap it). Default 4 MiB. */
  udpBufferSize?: number;
};

export type DnsServerStats = {
  udpMessages: number;
  tcpMessages: number;
  tcpConnections: number;
  /** Connections closed at once because of maxTcpConnections. */
  tcpRejected: number;
  /** Connections closed for a bad frame (too short, or no reply possible). */
  tcpBadFrames: number;
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
  const idleMs = opts.tcpIdleMs ?? 10_000;
  const maxConnections = opts.maxTcpConnections ?? 1000;
  const bufferSize = opts.udpBufferSize ?? 4 * 1024 * 1024;
  const stats: DnsServerStats = { udpMessages: 0, tcpMessages: 0, tcpConnections: 0, tcpRejected: 0, tcpBadFrames: 0, errors: 0 };
  const udpSockets: dgram.Socket[] = [];
  const tcpServers: net.Server[] = [];
  const connections = new Set<net.Socket>();

  function caught(err: unknown, what: string): void {
    stats.errors++;
    log.debug({ err }, what);
  }

  function openUdp(address: string, port: number): Promise<dgram.Socket> {
    const v6 = net.isIPv6(address);
    const socket = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6, reuseAddr: false });
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address, port, exclusive: true }, () => {
        socket.off('error', reject);
        socket.on('error', (err) => caught(err, 'udp socket error'));
        try {
          socket.setRecvBufferSize(bufferSize);
          socket.setSendBufferSize(bufferSize);
        } catch (err) {
          log.debug({ err }, 'cannot set UDP buffer sizes');
        }
        socket.on('message', (msg, rinfo) => {
          stats.udpMessages++;
          try {
            const reply = responder(msg, rinfo, 'udp');
            if (reply !== undefined) socket.send(reply, rinfo.port, rinfo.address);
          } catch (err) {
            caught(err, 'udp query failed');
          }
        });
        resolve(socket);
      });
    });
  }

  function openTcp(address: string, port: number): Promise<net.Server> {
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

  function onConnection(socket: net.Socket): void {
    socket.on('error', (err) => caught(err, 'tcp connection error'));
    if (connections.size >= maxConnections) {
      stats.tcpRejected++;
      socket.destroy();
      return;
    }
    stats.tcpConnections++;
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    socket.setTimeout(idleMs, () => socket.destroy());
    const remote = { address: socket.remoteAddress ?? '', family: socket.remoteFamily };
    let pending: Buffer | undefined;
    let closing = false;

    socket.on('data', (chunk: Buffer) => {
      if (closing) return;
      try {
        let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
        pending = undefined;
        const replies: Buffer[] = [];
        let p = 0;
        while (buf.length - p >= 2) {
          const size = buf.readUInt16BE(p);
          if (buf.length - p - 2 < size) break;
          const message = buf.subarray(p + 2, p + 2 + size);
          p += 2 + size;
          stats.tcpMessages++;
          const reply = responder(message, remote, 'tcp');
          // Nothing to say (not a query) means the stream is not DNS: stop reading it.
          if (reply === undefined) {
            stats.tcpBadFrames++;
            flush(socket, replies);
            closing = true;
            socket.end();
            return;
          }
          const framed = Buffer.allocUnsafe(reply.length + 2);
          framed.writeUInt16BE(reply.length, 0);
          reply.copy(framed, 2);
          replies.push(framed);
        }
        if (p < buf.length) pending = Buffer.from(buf.subarray(p));
        flush(socket, replies);
      } catch (err) {
        caught(err, 'tcp query failed');
        socket.destroy();
      }
    });
  }

  // Replies go out in query order, in one write; a reader that does not keep up pauses us.
  function flush(socket: net.Socket, replies: Buffer[]): void {
    if (replies.length === 0) return;
    const ok = socket.write(replies.length === 1 ? replies[0] : Buffer.concat(replies));
    if (!ok) {
      socket.pause();
      socket.once('drain', () => socket.resume());
    }
  }

  async function listenPair(address: string, port: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const udp = await openUdp(address, port);
      const bound = udp.address().port;
      try {
        const tcp = await openTcp(address, bound);
        udpSockets.push(udp);
        tcpServers.push(tcp);
        return;
      } catch (err) {
        udp.close();
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
      for (const socket of connections) socket.destroy();
      connections.clear();
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
