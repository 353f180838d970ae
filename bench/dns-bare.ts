// The ceiling bench:dns measures Arus against: a bare node:dgram socket in a
// process of its own that answers every query with one fixed reply (the bytes
// Arus sends for a typical query, only the ID copied in). Prints {"port":N}
// when it listens; SIGTERM stops it.
//
//   node --import tsx bench/dns-bare.ts
import dgram from 'node:dgram';
import { defaultConfig, ecs, query, servingState } from '../src/dns/fixtures.js';
import { createResponder } from '../src/dns/responder.js';
import { silentLogger } from '../src/log.js';

const state = servingState(defaultConfig(), 1);
const responder = createResponder({ getState: () => state, log: silentLogger(), rrl: { enabled: false } });
const fixed = responder(query({ name: 'api.gslb.example.com', opt: { options: [ecs(1, 24, [36, 66, 1])] } }), { address: '127.0.0.1' }, 'udp')!;
const socket = dgram.createSocket('udp4');
socket.on('message', (msg, rinfo) => {
  const reply = Buffer.allocUnsafe(fixed.length);
  fixed.copy(reply);
  reply[0] = msg[0];
  reply[1] = msg[1];
  socket.send(reply, rinfo.port, rinfo.address);
});
await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
for (const set of [socket.setRecvBufferSize, socket.setSendBufferSize]) {
  try {
    set.call(socket, 4 * 1024 * 1024);
  } catch {
    // the kernel's cap applies
  }
}
process.on('SIGTERM', () => socket.close(() => process.exit(0)));
process.stdout.write(`${JSON.stringify({ port: socket.address().port })}\n`);
