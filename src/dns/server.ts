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
  const idleMs = opts.tcpIdleMs ?? 10_000;
  const messageMs = opts.tcpMessageMs ?? 5000;
  const maxConnections = opts.maxTcpConnections ?? 1000;
  const maxPerClient = opts.maxTcpPerClient ?? 32;
  const maxQueued = opts.tcpMaxQueued ?? 64 * 1024;
  const bufferSize = opts.udpBufferSize ?? 4 * 1024 * 1024;
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
  const udpSockets: dgram.Socket[] = [];
  const tcpServers: net.Server[] = [];
  const connections = new Set<net.Socket>();
  const perClient = new Map<string, number>();

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
      if (deadline) clearTimeout(deadline);
    });
    socket.setTimeout(idleMs, () => {
      stats.tcpIdleClosed++;
      socket.destroy();
    });
    const remote = { address, family: socket.remoteFamily };

    // Framing state: the length prefix read so far, then the message being filled.
    let lengthOctets = 0;
    let length = 0;
    let message: Buffer | undefined;
    let filled = 0;
    /** Input not yet read because the client is not reading its replies. */
    let backlog: Buffer | undefined;
    let deadline: NodeJS.Timeout | undefined;
    let closing = false;

    const slow = () => {
      stats.tcpSlowClosed++;
      socket.destroy();
    };

    // Answers every whole message in `chunk`, in order, in one write. Returns when the
    // chunk is used up, the connection is closing, or too many replies wait for the client.
    function consume(chunk: Buffer): void {
      const replies: Buffer[] = [];
      let queued = 0;
      let completed = false;
      let p = 0;
      while (p < chunk.length) {
        if (message === undefined && lengthOctets === 0 && socket.writableLength + queued >= maxQueued) {
          backlog = chunk.subarray(p);
          break;
        }
        let whole: Buffer | undefined;
        if (message === undefined) {
          if (lengthOctets === 0 && chunk.length - p >= 2) {
            length = (chunk[p] << 8) | chunk[p + 1];
            p += 2;
          } else {
            length = lengthOctets === 0 ? chunk[p++] : (length << 8) | chunk[p++];
            if (++lengthOctets < 2) continue;
            lengthOctets = 0;
          }
          if (chunk.length - p >= length) {
            whole = chunk.subarray(p, p + length);
            p += length;
          } else {
            message = Buffer.allocUnsafe(length);
            filled = chunk.copy(message, 0, p);
            p = chunk.length;
          }
        } else {
          const n = chunk.copy(message, filled, p, p + message.length - filled);
          filled += n;
          p += n;
          if (filled === message.length) {
            whole = message;
            message = undefined;
          }
        }
        if (whole === undefined) continue;
        completed = true;
        stats.tcpMessages++;
        const reply = responder(whole, remote, 'tcp');
        // Nothing to say (not a query) means the stream is not DNS: stop reading it.
        if (reply === undefined) {
          stats.tcpBadFrames++;
          flush(replies);
          closing = true;
          socket.end();
          return;
        }
        const framed = Buffer.allocUnsafe(reply.length + 2);
        framed[0] = reply.length >> 8;
        framed[1] = reply.length & 0xff;
        reply.copy(framed, 2);
        replies.push(framed);
        queued += framed.length;
      }
      flush(replies);
      const partial = message !== undefined || lengthOctets > 0;
      if (!partial || backlog) {
        if (deadline) clearTimeout(deadline);
        deadline = undefined;
      } else if (completed || !deadline) {
        if (deadline) clearTimeout(deadline);
        deadline = setTimeout(slow, messageMs);
      }
      if (backlog) {
        // The rest waits until the client has read what we sent (the idle timeout ends a client that never does).
        socket.pause();
        const go = () => {
          if (socket.destroyed || !backlog) return;
          const rest = backlog;
          backlog = undefined;
          socket.resume();
          read(rest);
        };
        // The kernel may have taken the replies at once: then there is no drain to wait for.
        if (socket.writableNeedDrain) socket.once('drain', go);
        else setImmediate(go);
      }
    }

    function flush(replies: Buffer[]): void {
      if (replies.length > 0) socket.write(replies.length === 1 ? replies[0] : Buffer.concat(replies));
    }

    function read(chunk: Buffer): void {
      if (closing) return;
      try {
        if (backlog) backlog = Buffer.concat([backlog, chunk]);
        else consume(chunk);
      } catch (err) {
        caught(err, 'tcp query failed');
        socket.destroy();
      }
    }
    socket.on('data', read);
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
      perClient.clear();
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
