// Asking a server one question over UDP, from one socket the whole bench
// shares, and reading the A addresses of its answer.
import dgram from 'node:dgram';
import { Packet } from 'dns2';
import { ecsOf, query } from '../../src/dns/fixtures.js';

export interface Asker {
  /** The sorted A addresses (or 'timeout' / an rcode name) for `name` from `subnet`. */
  ask(port: number, name: string, subnet?: string, timeoutMs?: number): Promise<string[]>;
  /** The answer as text; a lost or late packet on a busy machine is not a different answer: asked again, up to five times, 2 s each. */
  askAgain(port: number, name: string, subnet?: string): Promise<string>;
  close(): void;
}

export function createAsker(): Asker {
  const socket = dgram.createSocket('udp4');
  let nextId = 1;
  const ask = (port: number, name: string, subnet?: string, timeoutMs = 1000): Promise<string[]> => {
    const id = nextId++ & 0xffff;
    const packet = query({ id, name, type: 1, opt: { size: 1232, options: subnet ? [ecsOf(subnet)] : [] } });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        socket.off('message', on);
        resolve(['timeout']);
      }, timeoutMs);
      const on = (msg: Buffer) => {
        if (msg.readUInt16BE(0) !== id) return;
        clearTimeout(timer);
        socket.off('message', on);
        const rcode = msg[3] & 0x0f;
        if (rcode !== 0) return resolve([`rcode ${rcode}`]);
        resolve(
          Packet.parse(msg)
            .answers.filter((a) => a.type === Packet.TYPE.A)
            .map((a) => (a as { address: string }).address)
            .sort(),
        );
      };
      socket.on('message', on);
      socket.send(packet, port, '127.0.0.1');
    });
  };
  const askAgain = async (port: number, name: string, subnet?: string) => {
    let a = await ask(port, name, subnet, 2000);
    for (let i = 0; i < 4 && a[0] === 'timeout'; i++) a = await ask(port, name, subnet, 2000);
    return a.join(' ');
  };
  return { ask, askAgain, close: () => socket.close() };
}
