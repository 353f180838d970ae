// Control's RFC 2136 listener (`--update-listen`): UDP and TCP (RFC 1035
// §4.2.2 length-prefixed, several messages a connection) on one address,
// every message through the update handler, one after another.
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import { Counter, type Registry } from 'prom-client';
import type { ListenAddress } from '../dns/server.js';
import type { Logger } from '../log.js';
import { OUTCOMES, type UpdateOutcome } from './handler.js';

/** A TCP connection with nothing sent for this long is closed (ms). */
const TCP_IDLE_MS = 30_000;
const MAX_TCP_CONNECTIONS = 64;

/** `arus_dns_updates_total{outcome}`: every UPDATE message control answered (or dropped), by outcome. */
export function updateCounter(registry: Registry, prefix = 'arus_'): (o: UpdateOutcome) => void {
  const c = new Counter({ name: `${prefix}dns_updates_total`, help: 'RFC 2136 dynamic updates control received, by outcome', labelNames: ['outcome'], registers: [registry] });
  for (const o of OUTCOMES) c.inc({ outcome: o }, 0);
  return (outcome) => c.inc({ outcome });
}

export type UpdateServer = { udp: number; tcp: number; stop(): Promise<void> };

export async function startUpdateServer(listen: ListenAddress, handle: (msg: Buffer) => Promise<Buffer | undefined>, log: Logger): Promise<UpdateServer> {
  const udp: Socket = createSocket({ type: isIPv6(listen.address) ? 'udp6' : 'udp4' });
  udp.on('message', (msg, rinfo) => {
    handle(msg).then(
      (out) => out && udp.send(out, rinfo.port, rinfo.address),
      (err: Error) => log.error({ err: err.message }, 'update failed'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(listen.port, listen.address, () => {
      udp.off('error', reject);
      udp.on('error', (err) => log.warn({ err: err.message }, 'update listener (UDP)'));
      resolve();
    });
  });
  const connections = new Set<TcpSocket>();
  const tcp: Server = createServer((sock) => {
    if (connections.size >= MAX_TCP_CONNECTIONS) return void sock.destroy();
    connections.add(sock);
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
    sock.on('close', () => connections.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf = Buffer.alloc(0);
    let chain = Promise.resolve();
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        chain = chain.then(async () => {
          const out = await handle(msg).catch((err: Error) => void log.error({ err: err.message }, 'update failed'));
          if (!out || sock.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(out.length);
          sock.write(Buffer.concat([len, out]));
        });
      }
    });
  });
  const port = (udp.address() as { port: number }).port;
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, listen.address, () => {
      tcp.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    udp.close();
    throw err;
  });
  return {
    udp: port,
    tcp: port,
    async stop() {
      for (const s of connections) s.destroy();
      await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
    },
  };
}
