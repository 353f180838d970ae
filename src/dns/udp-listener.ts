// A UDP listener: one socket per address, each datagram answered at once in
// its 'message' handler (no queue, no promise) and the reply sent back to its
// source. Rate limiting and size limits are the responder's.

import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from '../log.js';
import type { Responder } from './responder.js';

export type UdpListenerDeps = {
  readonly responder: Responder;
  readonly stats: { udpMessages: number };
  /** Requested socket buffer sizes in bytes (the kernel may cap them). */
  readonly bufferSize: number;
  readonly log: Logger;
  /** Counts and logs (at debug) an error that must not escape a handler. */
  readonly caught: (err: unknown, what: string) => void;
};

type UdpHandle = { fd?: number; recvStop?: () => number };

// dgram keeps its handle under a symbol; `_handle` is deprecated (DEP0112).
function handleOf(socket: dgram.Socket): UdpHandle | undefined {
  const state = Object.getOwnPropertySymbols(socket).find((k) => k.description === 'state symbol');
  return state && (socket as unknown as Record<symbol, { handle?: UdpHandle }>)[state]?.handle;
}

/**
 * Stops reading the socket, and so answering on it, without closing it: with its descriptor shared
 * by several threads, every thread stops before the first one closes it (a thread still sending
 * on a descriptor another closed would make libuv abort).
 */
export function stopReceiving(socket: dgram.Socket): void {
  handleOf(socket)?.recvStop?.();
}

/** The socket's file descriptor (Linux, macOS): what another thread's listener answers on too (`fd`). */
export function udpFd(socket: dgram.Socket): number {
  const fd = handleOf(socket)?.fd ?? -1;
  if (fd < 0) throw new Error('this platform does not expose UDP socket descriptors: run with --workers 0');
  return fd;
}

/**
 * Binds a UDP socket on `address:port` (IPv6-only for an IPv6 address), or, given `fd`, opens the
 * socket another thread bound (every thread's reads take turns on it), and answers on it.
 */
export function openUdp(address: string, port: number, deps: UdpListenerDeps, fd?: number): Promise<dgram.Socket> {
  const { responder, stats, bufferSize, log, caught } = deps;
  const v6 = net.isIPv6(address);
  const socket = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6, reuseAddr: false });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(fd === undefined ? { address, port, exclusive: true } : { fd, exclusive: true }, () => {
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
