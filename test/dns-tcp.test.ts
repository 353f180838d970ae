// DNS over TCP (RFC 7766) against the real server on loopback: idle and slow
// connections time out, connections are capped (in all and per client),
// pipelined queries are answered in order, a client that does not read stops
// being read, and a broken stream closes only its own connection.
import dgram from 'node:dgram';
import net from 'node:net';
import { Packet } from 'dns2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigConfig, query, servingState } from '../src/dns/fixtures.js';
import { createResponder } from '../src/dns/responder.js';
import { createDnsServer, type DnsServer, type DnsServerOptions } from '../src/dns/server.js';
import { silentLogger } from '../src/log.js';

const state = servingState(bigConfig(), 7);
const SG4 = ['127.0.1.11', '127.0.1.12'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const frame = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]);

async function startServer(opts: Partial<DnsServerOptions> = {}): Promise<{ server: DnsServer; port: number }> {
  const responder = createResponder({ getState: () => state, log: silentLogger() });
  const server = createDnsServer({ listen: [{ address: '127.0.0.1', port: 0 }], responder, log: silentLogger(), ...opts });
  const { tcp } = await server.start();
  return { server, port: tcp[0].port };
}

/** A TCP client that collects length-prefixed replies and notes when the server closes. */
type Client = { socket: net.Socket; replies: Buffer[]; closed: Promise<number>; next(n?: number, timeoutMs?: number): Promise<Buffer[]> };

function connect(port: number, localAddress?: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    const replies: Buffer[] = [];
    let buffered = Buffer.alloc(0);
    let waiters: (() => void)[] = [];
    const opened = Date.now();
    const closed = new Promise<number>((r) => socket.on('close', () => r(Date.now() - opened)));
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        replies.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
        buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
      }
      for (const w of waiters) w();
    });
    let taken = 0;
    const next = async (n = 1, timeoutMs = 5000) => {
      const until = Date.now() + timeoutMs;
      while (replies.length - taken < n && Date.now() < until && !socket.destroyed) {
        await Promise.race([new Promise<void>((r) => waiters.push(r)), sleep(50)]);
        waiters = [];
      }
      const out = replies.slice(taken, taken + n);
      taken += out.length;
      return out;
    };
    socket.once('connect', () => resolve({ socket, replies, closed, next }));
    socket.once('error', reject);
  });
}

function udpAsk(port: number, packet: Buffer): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => (s.close(), resolve(undefined)), 2000);
    s.on('message', (m) => (clearTimeout(t), s.close(), resolve(m)));
    s.send(packet, port, '127.0.0.1');
  });
}

const addresses = (reply: Buffer) => Packet.parse(reply).answers.map((a) => a.address).sort();

/** Retries `fn` until it gives a value (a busy machine takes its time to deliver a close), for up to `timeoutMs`. */
async function until<T>(fn: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  for (const end = Date.now() + timeoutMs; ; await sleep(20)) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
}
const closedBy = (clients: Client[], n: number) => (clients.filter((c) => c.socket.destroyed).length >= n ? true : undefined);

// The server's timers are real (idle 800 ms, message 1,200 ms). A client that must stay inside one
// leaves it room for a busy machine running the client late: gaps of 200 ms against 800, messages of
// 400 ms against 1,200. One that must be cut is given over 3× the deadline to be.
describe('dns over TCP: timeouts', () => {
  let server: DnsServer;
  let port: number;
  beforeAll(async () => ({ server, port } = await startServer({ tcpIdleMs: 800, tcpMessageMs: 1200 })));
  afterAll(() => server.stop());

  it('an idle connection is closed after the idle timeout, not before', async () => {
    const c = await connect(port);
    const after = await c.closed;
    expect(after).toBeGreaterThanOrEqual(700);
    expect(after).toBeLessThan(3000);
    expect(server.stats.tcpIdleClosed).toBeGreaterThanOrEqual(1);
  });

  it('a connection that keeps asking stays open past the idle timeout', async () => {
    const c = await connect(port);
    for (let i = 0; i < 8; i++) {
      c.socket.write(frame(query({ id: i, name: 'api.gslb.example.com' })));
      expect(addresses((await c.next())[0])).toEqual(SG4);
      await sleep(200);
    }
    expect(c.socket.destroyed).toBe(false);
    c.socket.destroy();
  });

  it('slow loris: a message sent one octet at a time (every 200 ms, inside the idle timeout) is cut at the message deadline', async () => {
    const c = await connect(port);
    const message = frame(query({ id: 9, name: 'api.gslb.example.com' }));
    const slowBefore = server.stats.tcpSlowClosed;
    let sent = 0;
    const dribble = setInterval(() => {
      if (!c.socket.destroyed && sent < message.length) c.socket.write(message.subarray(sent, ++sent));
    }, 200);
    const after = await c.closed;
    clearInterval(dribble);
    expect(sent).toBeLessThan(message.length);
    expect(after).toBeGreaterThanOrEqual(1200);
    expect(after).toBeLessThan(4000);
    expect(server.stats.tcpSlowClosed).toBe(slowBefore + 1);
  });

  it('the message deadline restarts with each whole message', async () => {
    const c = await connect(port);
    // Each message takes ~400 ms to arrive (under 1,200), five in a row: ~2 s in all, past one deadline.
    for (let i = 0; i < 5; i++) {
      const message = frame(query({ id: 100 + i, name: 'gslb.example.com', type: 6 }));
      const half = message.length >> 1;
      c.socket.write(message.subarray(0, half));
      await sleep(200);
      c.socket.write(message.subarray(half, message.length - 1));
      await sleep(200);
      c.socket.write(message.subarray(message.length - 1));
      expect(Packet.parse((await c.next())[0]).header.id).toBe(100 + i);
    }
    expect(c.socket.destroyed).toBe(false);
    c.socket.destroy();
  });
});

describe('dns over TCP: connection caps', () => {
  it('over the total cap, new connections are closed at once and the server still answers', async () => {
    const { server, port } = await startServer({ maxTcpConnections: 20, maxTcpPerClient: 100 });
    try {
      const clients = await Promise.all(Array.from({ length: 25 }, () => connect(port)));
      await until(() => closedBy(clients, 5), 'five connections closed');
      const open = clients.filter((c) => !c.socket.destroyed);
      expect(open).toHaveLength(20);
      expect(server.stats.tcpRejected).toBe(5);
      open[0].socket.write(frame(query({ id: 1, name: 'api.gslb.example.com' })));
      expect(addresses((await open[0].next())[0])).toEqual(SG4);
      expect(addresses((await udpAsk(port, query({ name: 'api.gslb.example.com' })))!)).toEqual(SG4);
      // A slot freed is a slot taken, once the server has seen the close: until then a newcomer is closed at once.
      open[1].socket.destroy();
      const again = await until(async () => {
        const c = await connect(port);
        c.socket.write(frame(query({ id: 2, name: 'api.gslb.example.com' })));
        if ((await c.next(1, 2000)).length === 1) return c;
        c.socket.destroy();
      }, 'a connection in the freed slot');
      expect(open.slice(2).every((c) => !c.socket.destroyed)).toBe(true);
      for (const c of [...clients, again]) c.socket.destroy();
    } finally {
      await server.stop();
    }
  });

  it('one client address gets at most maxTcpPerClient; another address is not affected', async () => {
    const { server, port } = await startServer({ maxTcpConnections: 100, maxTcpPerClient: 4 });
    try {
      const mine = await Promise.all(Array.from({ length: 7 }, () => connect(port, '127.0.0.1')));
      const other = await Promise.all(Array.from({ length: 4 }, () => connect(port, '127.0.0.2')));
      await until(() => closedBy(mine, 3), 'three of one address closed');
      expect(mine.filter((c) => !c.socket.destroyed)).toHaveLength(4);
      expect(other.filter((c) => !c.socket.destroyed)).toHaveLength(4);
      expect(server.stats.tcpRejected).toBe(3);
      for (const c of [...mine, ...other]) c.socket.destroy();
    } finally {
      await server.stop();
    }
  });
});

describe('dns over TCP: pipelining and broken streams', () => {
  let server: DnsServer;
  let port: number;
  beforeAll(async () => ({ server, port } = await startServer({ tcpIdleMs: 5000, tcpMessageMs: 1000 })));
  afterAll(() => server.stop());

  const mix = (i: number) =>
    [
      { name: 'api.gslb.example.com', type: 1 },
      { name: 'gslb.example.com', type: 6 },
      { name: 'nope.gslb.example.com', type: 1 },
      { name: 'bulk.gslb.example.com', type: 28 },
      { name: 'example.org', type: 1 },
    ][i % 5];

  function checkInOrder(replies: Buffer[], first: number) {
    replies.forEach((raw, i) => {
      const msg = Packet.parse(raw);
      expect(msg.header.id).toBe(first + i);
      const q = mix(i);
      expect(msg.questions[0].name).toBe(q.name);
      expect(msg.header.rcode).toBe([0, 0, 3, 0, 5][i % 5]);
      if (i % 5 === 3) expect(msg.answers).toHaveLength(32);
    });
  }

  it('50 pipelined queries in one write come back in order, with matching IDs and answers', async () => {
    const c = await connect(port);
    c.socket.write(Buffer.concat(Array.from({ length: 50 }, (_, i) => frame(query({ id: 1000 + i, ...mix(i) })))));
    const replies = await c.next(50);
    expect(replies).toHaveLength(50);
    checkInOrder(replies, 1000);
    c.socket.destroy();
  });

  it('the same 50, cut into segments of 7 octets across frame boundaries', async () => {
    const c = await connect(port);
    const all = Buffer.concat(Array.from({ length: 50 }, (_, i) => frame(query({ id: 2000 + i, ...mix(i) }))));
    c.socket.setNoDelay(true);
    for (let p = 0; p < all.length; p += 7) {
      c.socket.write(all.subarray(p, p + 7));
      if (p % 140 === 0) await sleep(1);
    }
    const replies = await c.next(50);
    checkInOrder(replies, 2000);
    c.socket.destroy();
  });

  it('a client that does not read stops being read; its replies all come, in order, once it reads', async () => {
    const c = await connect(port);
    c.socket.pause();
    const before = server.stats.tcpMessages;
    // 20,000 queries for 32 AAAA (~1 KB each): ~20 MB of replies owed, more than the kernel's buffers on both ends hold.
    const n = 20_000;
    const stream = Buffer.concat(Array.from({ length: n }, (_, i) => frame(query({ id: i, name: 'bulk.gslb.example.com', type: 28 }))));
    c.socket.write(stream);
    await sleep(500);
    const answered = server.stats.tcpMessages - before;
    expect(answered).toBeLessThan(n);
    c.socket.resume();
    const replies = await c.next(n, 30_000);
    expect(replies).toHaveLength(n);
    replies.forEach((r, i) => expect(r.readUInt16BE(0)).toBe(i));
    c.socket.destroy();
  });

  it.each([
    ['a frame shorter than a header', Buffer.from([0, 3, 1, 2, 3])],
    ['an empty frame', Buffer.from([0, 0])],
    ['a response (QR=1)', frame(query({ flags: 0x8100 }))],
    // "GE": a length of 18,245 that never comes: cut at the message deadline.
    ['HTTP', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
  ])('%s closes that connection only; the queries before it are answered', async (_, garbage) => {
    const good = await connect(port);
    const bad = await connect(port);
    bad.socket.write(Buffer.concat([frame(query({ id: 77, name: 'api.gslb.example.com' })), garbage]));
    expect(await bad.closed).toBeLessThan(4000); // at once, or (HTTP) at the 1,000 ms message deadline
    expect(Packet.parse(bad.replies[0]).header.id).toBe(77);
    good.socket.write(frame(query({ id: 78, name: 'api.gslb.example.com' })));
    expect(addresses((await good.next())[0])).toEqual(SG4);
    good.socket.destroy();
  });

  it('a 65,535-octet message is read whole (and is FORMERR: trailing octets)', async () => {
    const c = await connect(port);
    const q = query({ id: 5, name: 'api.gslb.example.com' });
    const big = Buffer.concat([q, Buffer.alloc(65535 - q.length)]);
    c.socket.write(frame(big));
    const [reply] = await c.next();
    expect(Packet.parse(reply).header).toMatchObject({ id: 5, rcode: 1 });
    c.socket.destroy();
  });
});
