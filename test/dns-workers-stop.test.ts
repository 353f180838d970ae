// A node whose DNS workers share their sockets stops cleanly under load. Each
// worker's close of a shared listener closes the same descriptor number; one
// that came after the process had reused the number (a fresh TCP connection,
// another thread's file) closed that instead, and libuv aborted the process
// (SIGABRT at SIGTERM, about 1 stop in 15). Here clients keep connecting over
// TCP and asking over UDP while the node is told to stop, which makes the
// reuse likely: every stop must end with exit code 0.
import dgram from 'node:dgram';
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { query } from '../src/dns/fixtures.js';
import { startArus, tempDir } from './helpers/arus.js';
import { regionsWithChecks } from './helpers/regions.js';

const STOPS = 12;

/** TCP connections opened and dropped (to DNS and to the API, whose thread closes nothing shared), and UDP queries, as fast as they go until stopped. */
function load(udpPort: number, tcpPort: number, apiPort: number): () => void {
  let on = true;
  const udp = dgram.createSocket('udp4');
  udp.on('error', () => undefined);
  const packet = query({ name: 'api.gslb.example.com' });
  const ask = () => {
    if (!on) return;
    udp.send(packet, udpPort, '127.0.0.1', () => setImmediate(ask));
  };
  const connect = (port: number) => {
    if (!on) return;
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.once('connect', () => s.write(Buffer.concat([Buffer.from([0, packet.length]), packet])));
    s.once('close', () => setTimeout(() => connect(port), 1));
    setTimeout(() => s.destroy(), 5);
  };
  for (let i = 0; i < 4; i++) ask();
  for (let i = 0; i < 8; i++) connect(tcpPort);
  for (let i = 0; i < 8; i++) connect(apiPort);
  return () => {
    on = false;
    udp.close();
  };
}

describe('a node with two DNS workers, stopped under load', () => {
  it(`exits 0 at SIGTERM, ${STOPS} stops out of ${STOPS}`, async () => {
    const dir = tempDir();
    const regions = regionsWithChecks(dir, () => undefined);
    const codes: string[] = [];
    for (let i = 0; i < STOPS; i++) {
      const server = await startArus(['up', '--db', join(dir, `${i}.db`), '--regions', regions, '--workers', '2', '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off']);
      const stop = load(server.dnsPort, server.dnsTcpPort, Number(new URL(server.api!).port));
      await new Promise((r) => setTimeout(r, 100));
      const exited = new Promise<string>((resolve) => server.proc.once('exit', (code, signal) => resolve(`${code ?? signal}`)));
      server.proc.kill('SIGTERM');
      codes.push(await exited);
      stop();
    }
    expect(codes).toEqual(Array<string>(STOPS).fill('0'));
  }, 120_000);
});
