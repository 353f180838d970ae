// A TCP forwarder in front of a server that records every connection a client
// opens through it: when, and the first byte the client sent (0x16 opens a
// TLS handshake; a letter is plain HTTP). It sees a client's retries and
// whether it ever fell back to plain text, without trusting the client's logs.
import { connect, createServer, type Server, type Socket } from 'node:net';

export type TapConnection = { at: number; firstByte?: number };

export type Tap = { port: number; connections: TapConnection[]; close(): Promise<void> };

/** Listens on a free loopback port and forwards each connection to 127.0.0.1:`targetPort`. */
export async function startTap(targetPort: number): Promise<Tap> {
  const connections: TapConnection[] = [];
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const seen: TapConnection = { at: Date.now() };
    connections.push(seen);
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      open.add(s);
      s.once('close', () => open.delete(s));
    }
    client.once('data', (d: Buffer) => (seen.firstByte = d[0]));
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    connections,
    close: () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  };
}
