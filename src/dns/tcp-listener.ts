// TCP listeners: binding, and accepting connections within the caps (all
// listeners together, and per client address), as RFC 7766 §6.2 asks:
//
// - At a cap, the longest-idle connection (of that address, or of all) is
//   closed to admit the new one; a connection with a query in progress or
//   replies queued is not idle. Only when none can be evicted is the new one
//   refused (closed at once).
// - The idle timeout shortens as connections fill: the full `idleMs` up to
//   half the cap, then falling linearly to `idleFloorMs` at the cap (Unbound
//   shortens its own in steps as its TCP buffers fill; this is a line). It
//   applies to every connection at once (one timer walks them in order of last
//   activity), and is what the EDNS keepalive option (RFC 7828) offers.
//
// What is read on a connection is tcp-stream.ts's.

import net from 'node:net';
import { serveTcpStream, type TcpStream, type TcpStreamDeps } from './tcp-stream.js';

export type TcpAcceptorStats = { tcpConnections: number; tcpOpen: number; tcpRejected: number; tcpEvicted: number; tcpIdleClosed: number };

export type TcpAcceptorOptions = {
  readonly stats: TcpAcceptorStats;
  /** Close a connection after this long with nothing read or written, while at most half the cap is used. */
  readonly idleMs: number;
  /** The idle timeout at the cap (it falls linearly from `idleMs` above half the cap); at most `idleMs`. */
  readonly idleFloorMs: number;
  /** Concurrent connections, all listeners together. */
  readonly maxConnections: number;
  /** Concurrent connections from one client address. */
  readonly maxPerClient: number;
  /**
   * The node's open connections, when several acceptors (DNS worker threads) share its listeners:
   * slot 0, counted by all of them, is what `maxConnections` and the idle curve apply to (each
   * evicts among its own). Per client, each acceptor counts its own.
   */
  readonly openConnections?: Int32Array;
  readonly caught: (err: unknown, what: string) => void;
  /** What every accepted connection is served with. */
  readonly stream: TcpStreamDeps;
};

export interface TcpAcceptor {
  /** The `net.Server` connection listener. */
  readonly onConnection: (socket: net.Socket) => void;
  /** The idle timeout in force now, in ms. */
  idleTimeout(): number;
  /** Destroys every open connection and forgets them. */
  closeAll(): void;
}

/** An open connection as the acceptor keeps it. */
type Conn = { readonly socket: net.Socket; readonly address: string; last: number; stream: TcpStream | undefined };

/** The idle timeout with `open` connections of `max`: full up to half, then linear down to the floor at the cap. */
export function idleTimeoutFor(open: number, max: number, idleMs: number, floorMs: number): number {
  const floor = Math.min(floorMs, idleMs);
  const half = max / 2;
  if (open <= half) return idleMs;
  const t = idleMs - ((idleMs - floor) * (open - half)) / (max - half);
  return t > floor ? Math.round(t) : floor;
}

/** Open connections, the node's: every worker's, counted in memory they share (workers/), else this acceptor's. */
function openCount(stats: { tcpOpen: number }, shared: Int32Array | undefined, mine: Set<Conn>) {
  return {
    open: shared ? () => Atomics.load(shared, 0) : () => mine.size,
    count: (d: 1 | -1) => {
      stats.tcpOpen += d;
      if (shared) Atomics.add(shared, 0, d);
    },
  };
}

function longestIdle(conns: Set<Conn>): Conn | undefined {
  let best: Conn | undefined;
  for (const c of conns) if (!c.stream?.busy() && (best === undefined || c.last < best.last)) best = c;
  return best;
}

export function createTcpAcceptor(opts: TcpAcceptorOptions): TcpAcceptor {
  const { stats, idleMs, idleFloorMs, maxConnections, maxPerClient, caught } = opts;
  /** Every open connection, least recently active first (an active one is moved to the end). */
  const lru = new Set<Conn>();
  const byClient = new Map<string, Set<Conn>>();
  let timer: NodeJS.Timeout | undefined;
  let due = Infinity;

  const { open, count } = openCount(stats, opts.openConnections, lru);
  const idleTimeout = () => idleTimeoutFor(open(), maxConnections, idleMs, idleFloorMs);

  function onConnection(socket: net.Socket): void {
    socket.on('error', (err) => caught(err, 'tcp connection error'));
    const address = socket.remoteAddress ?? '';
    if (!admit(address)) {
      stats.tcpRejected++;
      socket.destroy();
      return;
    }
    const conn: Conn = { socket, address, last: performance.now(), stream: undefined };
    stats.tcpConnections++;
    count(1);
    lru.add(conn);
    const mine = byClient.get(address);
    if (mine) mine.add(conn);
    else byClient.set(address, new Set([conn]));
    socket.on('close', () => forget(conn));
    conn.stream = serveTcpStream(socket, { address, family: socket.remoteFamily }, opts.stream, {
      active() {
        conn.last = performance.now();
        if (lru.delete(conn)) lru.add(conn);
      },
      idleMs: idleTimeout,
    });
    schedule();
  }

  /** Room for one more connection from `address`, made by evicting an idle one at a cap; false when there is none. */
  function admit(address: string): boolean {
    const mine = byClient.get(address);
    if (mine !== undefined && mine.size >= maxPerClient && !evict(longestIdle(mine))) return false;
    return open() < maxConnections || evict(firstIdle());
  }

  function forget(conn: Conn): void {
    if (!lru.delete(conn)) return;
    count(-1);
    const mine = byClient.get(conn.address);
    if (mine && mine.delete(conn) && mine.size === 0) byClient.delete(conn.address);
  }

  /** Closes `conn` to admit another; false when there is none. */
  function evict(conn: Conn | undefined): boolean {
    if (conn === undefined) return false;
    stats.tcpEvicted++;
    forget(conn);
    conn.socket.destroy();
    return true;
  }

  // The connections in `lru` are in order of last activity: the first that is not busy is the longest idle.
  function firstIdle(): Conn | undefined {
    for (const c of lru) if (!c.stream?.busy()) return c;
    return undefined;
  }

  // One timer for every connection, due when the least recently active one reaches the timeout in force.
  function schedule(): void {
    const first = lru.values().next().value;
    if (first === undefined) {
      clearTimeout(timer);
      timer = undefined;
      due = Infinity;
      return;
    }
    const at = first.last + idleTimeout();
    if (timer !== undefined && due <= at) return;
    clearTimeout(timer);
    due = at;
    timer = setTimeout(sweep, Math.max(0, at - performance.now()));
    timer.unref();
  }

  function sweep(): void {
    timer = undefined;
    due = Infinity;
    const now = performance.now();
    for (const c of lru) {
      // Recomputed as connections close: fewer open, a longer timeout.
      if (now - c.last < idleTimeout()) break;
      stats.tcpIdleClosed++;
      forget(c);
      c.socket.destroy();
    }
    schedule();
  }

  return {
    onConnection,
    idleTimeout,
    closeAll() {
      for (const c of [...lru]) {
        forget(c);
        c.socket.destroy();
      }
      clearTimeout(timer);
      timer = undefined;
      due = Infinity;
    },
  };
}

/** The listening socket's file descriptor: what another thread's listener accepts on too (`fd`). */
export function tcpFd(server: net.Server): number {
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
  if (fd < 0) throw new Error('this platform does not expose TCP socket descriptors: run with --workers 0');
  return fd;
}

/**
 * Listens on `address:port` (IPv6-only for an IPv6 address), or, given `fd`, on the socket another
 * thread listens on (every thread's accepts take turns on it), with `onConnection`.
 */
export function openTcp(address: string, port: number, onConnection: (socket: net.Socket) => void, caught: (err: unknown, what: string) => void, fd?: number): Promise<net.Server> {
  const server = net.createServer({ noDelay: true }, onConnection);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(fd === undefined ? { host: address, port, ipv6Only: net.isIPv6(address), exclusive: true } : { fd, exclusive: true }, () => {
      server.off('error', reject);
      server.on('error', (err) => caught(err, 'tcp server error'));
      resolve(server);
    });
  });
}
