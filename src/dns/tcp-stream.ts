// DNS over one TCP connection (RFC 7766): 2-octet length framing, a message
// arriving in pieces copied once into a buffer of its announced size,
// pipelined queries answered in order (all those of one read in one write).
// A client that does not read its replies stops being read once `maxQueued`
// octets wait for it; a message begun must arrive whole within `messageMs`
// (the idle timer restarts with every octet, so slow senders need their own
// deadline); anything that gets no reply ends the stream. Queries completed
// in one read after the first are counted as pipelined (each arrived before
// the one ahead of it was answered).

import type net from 'node:net';
import type { Remote } from './replies.js';
import type { Responder } from './responder.js';

export type TcpStreamDeps = {
  readonly responder: Responder;
  readonly stats: { tcpMessages: number; tcpBadFrames: number; tcpSlowClosed: number; tcpPipelined: number };
  /** Replies queued for a client that does not read them before we stop reading its queries. */
  readonly maxQueued: number;
  /** A message begun must arrive whole within this long, or the connection is closed. */
  readonly messageMs: number;
  readonly caught: (err: unknown, what: string) => void;
};

/** What the connection's keeper (tcp-listener.ts) is told, and asked. */
export interface TcpConnectionKeeper {
  /** Something was read, or written replies have drained: the connection is not idle. */
  active(): void;
  /** The idle timeout in force now, in ms (offered to queries that ask, as the EDNS keepalive TIMEOUT). */
  idleMs(): number;
}

/** A stream being served, as its keeper sees it. */
export interface TcpStream {
  /** A query is in progress (part of a message read, or messages waiting for the client to read) or replies are queued. */
  busy(): boolean;
}

/** One connection's state between reads. */
type Stream = {
  readonly socket: net.Socket;
  readonly remote: Remote;
  readonly deps: TcpStreamDeps;
  readonly keeper: TcpConnectionKeeper;
  // Framing state: the length prefix read so far, then the message being filled.
  lengthOctets: number;
  length: number;
  message: Buffer | undefined;
  filled: number;
  /** Input not yet read because the client is not reading its replies. */
  backlog: Buffer | undefined;
  deadline: NodeJS.Timeout | undefined;
  closing: boolean;
};

/** Answers the DNS messages read from `socket` until it closes. */
export function serveTcpStream(socket: net.Socket, remote: Remote, deps: TcpStreamDeps, keeper: TcpConnectionKeeper): TcpStream {
  const s: Stream = { socket, remote, deps, keeper, lengthOctets: 0, length: 0, message: undefined, filled: 0, backlog: undefined, deadline: undefined, closing: false };
  socket.on('close', () => {
    if (s.deadline) clearTimeout(s.deadline);
  });
  socket.on('data', (chunk: Buffer) => read(s, chunk));
  socket.on('drain', () => keeper.active());
  return { busy: () => s.message !== undefined || s.lengthOctets > 0 || s.backlog !== undefined || socket.writableLength > 0 };
}

function read(s: Stream, chunk: Buffer): void {
  if (s.closing) return;
  s.keeper.active();
  try {
    if (s.backlog) s.backlog = Buffer.concat([s.backlog, chunk]);
    else consume(s, chunk);
  } catch (err) {
    s.deps.caught(err, 'tcp query failed');
    s.socket.destroy();
  }
}

// Answers every whole message in `chunk`, in order, in one write. Returns when the
// chunk is used up, the connection is closing, or too many replies wait for the client.
function consume(s: Stream, chunk: Buffer): void {
  const { socket, deps } = s;
  const replies: Buffer[] = [];
  let queued = 0;
  let completed = 0;
  let p = 0;
  while (p < chunk.length) {
    if (s.message === undefined && s.lengthOctets === 0 && socket.writableLength + queued >= deps.maxQueued) {
      s.backlog = chunk.subarray(p);
      break;
    }
    let whole: Buffer | undefined;
    if (s.message === undefined) {
      if (s.lengthOctets === 0 && chunk.length - p >= 2) {
        s.length = (chunk[p] << 8) | chunk[p + 1];
        p += 2;
      } else {
        s.length = s.lengthOctets === 0 ? chunk[p++] : (s.length << 8) | chunk[p++];
        if (++s.lengthOctets < 2) continue;
        s.lengthOctets = 0;
      }
      if (chunk.length - p >= s.length) {
        whole = chunk.subarray(p, p + s.length);
        p += s.length;
      } else {
        s.message = Buffer.allocUnsafe(s.length);
        s.filled = chunk.copy(s.message, 0, p);
        p = chunk.length;
      }
    } else {
      const message = s.message;
      const n = chunk.copy(message, s.filled, p, p + message.length - s.filled);
      s.filled += n;
      p += n;
      if (s.filled === message.length) {
        whole = message;
        s.message = undefined;
      }
    }
    if (whole === undefined) continue;
    if (++completed > 1) deps.stats.tcpPipelined++;
    deps.stats.tcpMessages++;
    const reply = deps.responder(whole, s.remote, 'tcp', s.keeper.idleMs());
    // Nothing to say (not a query) means the stream is not DNS: stop reading it.
    if (reply === undefined) {
      deps.stats.tcpBadFrames++;
      flush(socket, replies);
      s.closing = true;
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
  flush(socket, replies);
  setDeadline(s, completed > 0);
  if (s.backlog) waitForReader(s);
}

function flush(socket: net.Socket, replies: Buffer[]): void {
  if (replies.length > 0) socket.write(replies.length === 1 ? replies[0] : Buffer.concat(replies));
}

// A message left partial gets a deadline from its first octet; one completed in this read
// restarts it for the next. None while nothing is partial, or while the client is not reading.
function setDeadline(s: Stream, completed: boolean): void {
  const partial = s.message !== undefined || s.lengthOctets > 0;
  if (!partial || s.backlog) {
    if (s.deadline) clearTimeout(s.deadline);
    s.deadline = undefined;
  } else if (completed || !s.deadline) {
    if (s.deadline) clearTimeout(s.deadline);
    s.deadline = setTimeout(slow, s.deps.messageMs, s);
  }
}

function slow(s: Stream): void {
  s.deps.stats.tcpSlowClosed++;
  s.socket.destroy();
}

function waitForReader(s: Stream): void {
  const { socket } = s;
  // The rest waits until the client has read what we sent (the idle timeout ends a client that never does).
  socket.pause();
  const go = () => {
    if (socket.destroyed || !s.backlog) return;
    const rest = s.backlog;
    s.backlog = undefined;
    socket.resume();
    read(s, rest);
  };
  // The kernel may have taken the replies at once: then there is no drain to wait for.
  if (socket.writableNeedDrain) socket.once('drain', go);
  else setImmediate(go);
}
