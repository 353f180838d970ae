// DNS over TCP (RFC 7766) against the real server on loopback: idle and slow
// connections time out; at the connection caps (in all and per client) the
// longest-idle connection is evicted for a new one, a busy one never, and the
// idle timeout shortens as connections fill (seen in the EDNS keepalive
// TIMEOUT, RFC 7828); pipelined queries are answered in order and counted; a
// client that does not read stops being read; a broken stream closes only its
// own connection. Counters are checked in the stats and in /metrics.
import dgram from 'node:dgram';
import net from 'node:net';
import { Packet } from 'dns2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigConfig, decodeReply, keepalive, query, servingState } from '../src/dns/fixtures.js';
import { createResponder } from '../src/dns/responder.js';
import { createDnsServer, type DnsServer, type DnsServerOptions } from '../src/dns/server.js';
import { silentLogger } from '../src/log.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { digAsync, hasDig } from './helpers/dig.js';

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

/** A query for the SOA asking for the EDNS keepalive option: the reply's TIMEOUT (100 ms units), or undefined. */
const KEEPALIVE_QUERY = (id: number) => frame(query({ id, name: 'gslb.example.com', type: 6, opt: { options: [keepalive()] } }));
const offered = (reply: Buffer) => {
  const o = decodeReply(reply).opt?.options.find((x) => x.code === 11);
  return o ? (o.data[0] << 8) | o.data[1] : undefined;
};

/** Opens `addresses.length` connections in rounds of `round` at a time, in order: the server accepts each round after the one before. */
async function connectAll(port: number, addresses: string[], round = 100): Promise<Client[]> {
  const clients: Client[] = [];
  for (let i = 0; i < addresses.length; i += round) clients.push(...(await Promise.all(addresses.slice(i, i + round).map((a) => connect(port, a)))));
  return clients;
}

/** Sends a whole query and the first octet of the next: once the reply comes, the server holds a query in progress. */
async function makeBusy(c: Client, id: number): Promise<void> {
  c.socket.write(Buffer.concat([frame(query({ id, name: 'api.gslb.example.com' })), Buffer.from([0])]));
  expect(Packet.parse((await c.next())[0]).header.id).toBe(id);
}

const scrape = async (server: DnsServer) => {
  const metrics = createMetrics({ defaultMetrics: false });
  metrics.observeDnsServer(server.stats);
  const text = await metrics.text();
  return (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
};

describe('dns over TCP: at the caps the longest-idle connection makes room (RFC 7766 §6.2.3)', () => {
  it('1,200 idle connections from 200 addresses, cap 1,000: the 200 longest idle are evicted; a new address still gets its answer', async () => {
    // Idle timeouts far longer than the test: every close seen here is an eviction.
    const { server, port } = await startServer({ maxTcpConnections: 1000, maxTcpPerClient: 32, tcpIdleMs: 120_000, tcpIdleFloorMs: 60_000 });
    const clients: Client[] = [];
    try {
      const sources = Array.from({ length: 6 }, () => Array.from({ length: 200 }, (_, i) => `127.0.1.${i + 1}`)).flat();
      clients.push(...(await connectAll(port, sources)));
      await until(() => (server.stats.tcpEvicted === 200 && closedBy(clients, 200) ? true : undefined), '200 evictions seen by their clients');
      expect(clients.slice(0, 200).every((c) => c.socket.destroyed)).toBe(true);
      expect(clients.slice(200).some((c) => c.socket.destroyed)).toBe(false);
      expect(server.stats).toMatchObject({ tcpOpen: 1000, tcpConnections: 1200, tcpEvicted: 200, tcpRejected: 0, tcpIdleClosed: 0 });

      const newcomer = await connect(port, '127.0.2.1');
      clients.push(newcomer);
      newcomer.socket.write(frame(query({ id: 7, name: 'api.gslb.example.com' })));
      expect(addresses((await newcomer.next())[0])).toEqual(SG4);
      await until(() => closedBy(clients, 201), 'one more eviction');
      // The one evicted is of the longest idle: the third round, the oldest left.
      expect(clients.slice(200, 300).filter((c) => c.socket.destroyed)).toHaveLength(1);
      expect(server.stats).toMatchObject({ tcpOpen: 1000, tcpEvicted: 201, tcpRejected: 0 });
      // At the cap, the idle timeout in force is the floor (60 s: 600 units), and the newcomer is told so.
      newcomer.socket.write(KEEPALIVE_QUERY(8));
      expect(offered((await newcomer.next())[0])).toBe(600);
      const metric = await scrape(server);
      expect(metric('arus_dns_tcp_connections_open')).toBe(1000);
      expect(metric('arus_dns_tcp_evicted_total')).toBe(201);
      expect(metric('arus_dns_tcp_refused_total')).toBe(0);
      expect(metric('arus_dns_tcp_connections_total')).toBe(1201);
      expect(metric('arus_dns_tcp_messages_total')).toBe(2);
    } finally {
      for (const c of clients) c.socket.destroy();
      await server.stop();
    }
  });

  it('at the per-address cap, that address’s longest-idle connection makes room; other addresses are not touched', async () => {
    const { server, port } = await startServer({ maxTcpConnections: 1000, maxTcpPerClient: 32, tcpIdleMs: 120_000, tcpIdleFloorMs: 60_000 });
    const clients: Client[] = [];
    try {
      const oldest = await connect(port, '127.0.3.1');
      await until(() => (server.stats.tcpOpen === 1 ? true : undefined), 'the first connection accepted');
      const mine = [oldest, ...(await connectAll(port, Array(31).fill('127.0.3.1')))];
      const other = await connectAll(port, Array(8).fill('127.0.3.2'));
      clients.push(...mine, ...other);
      await until(() => (server.stats.tcpOpen === 40 ? true : undefined), '40 connections open');
      const extra = await connect(port, '127.0.3.1');
      clients.push(extra);
      extra.socket.write(frame(query({ id: 9, name: 'api.gslb.example.com' })));
      expect(addresses((await extra.next())[0])).toEqual(SG4);
      await oldest.closed;
      expect(mine.slice(1).some((c) => c.socket.destroyed)).toBe(false);
      expect(other.some((c) => c.socket.destroyed)).toBe(false);
      expect(server.stats).toMatchObject({ tcpOpen: 40, tcpEvicted: 1, tcpRejected: 0 });
    } finally {
      for (const c of clients) c.socket.destroy();
      await server.stop();
    }
  });

  it('a connection with a query in progress is not evicted; with none idle, a newcomer is refused', async () => {
    const { server, port } = await startServer({ maxTcpConnections: 100, maxTcpPerClient: 2, tcpIdleMs: 120_000, tcpIdleFloorMs: 60_000, tcpMessageMs: 60_000 });
    const clients: Client[] = [];
    try {
      const busy = await connect(port, '127.0.4.1');
      clients.push(busy);
      await makeBusy(busy, 1);
      const idle = await connect(port, '127.0.4.1');
      clients.push(idle);
      await until(() => (server.stats.tcpOpen === 2 ? true : undefined), 'two open');
      // `busy` has been idle longer, but a query is in progress on it: `idle` goes.
      const third = await connect(port, '127.0.4.1');
      clients.push(third);
      await idle.closed;
      expect(busy.socket.destroyed).toBe(false);
      await makeBusy(third, 2);
      const fourth = await connect(port, '127.0.4.1');
      clients.push(fourth);
      await fourth.closed;
      expect(server.stats).toMatchObject({ tcpOpen: 2, tcpEvicted: 1, tcpRejected: 1 });
      // The query in progress was kept whole: its last octets complete it.
      const rest = frame(query({ id: 3, name: 'api.gslb.example.com' })).subarray(1);
      busy.socket.write(rest);
      expect(Packet.parse((await busy.next())[0]).header.id).toBe(3);
      expect((await scrape(server))('arus_dns_tcp_refused_total')).toBe(1);
    } finally {
      for (const c of clients) c.socket.destroy();
      await server.stop();
    }
  });

  it('at the total cap, a connection whose replies wait for the client to read them is not evicted either', async () => {
    const { server, port } = await startServer({ maxTcpConnections: 3, maxTcpPerClient: 100, tcpIdleMs: 120_000, tcpIdleFloorMs: 60_000, tcpMessageMs: 60_000 });
    const clients: Client[] = [];
    try {
      // 20,000 queries for 32 AAAA owed to a client that does not read: the server stalls with replies queued.
      const stalled = await connect(port);
      clients.push(stalled);
      stalled.socket.pause();
      stalled.socket.write(Buffer.concat(Array.from({ length: 20_000 }, (_, i) => frame(query({ id: i, name: 'bulk.gslb.example.com', type: 28 })))));
      let seen = -1;
      await until(
        () => {
          const now = server.stats.tcpMessages;
          const stuck = now > 0 && now === seen && now < 20_000;
          seen = now;
          return stuck ? true : undefined;
        },
        'the server to stop reading a client that does not read',
        20_000,
      );
      const inProgress = await connect(port);
      clients.push(inProgress);
      await makeBusy(inProgress, 1);
      const idle = await connect(port);
      clients.push(idle);
      await until(() => (server.stats.tcpOpen === 3 ? true : undefined), 'three open');
      const newcomer = await connect(port);
      clients.push(newcomer);
      await idle.closed;
      newcomer.socket.write(frame(query({ id: 2, name: 'api.gslb.example.com' })));
      expect(addresses((await newcomer.next())[0])).toEqual(SG4);
      expect(stalled.socket.destroyed || inProgress.socket.destroyed).toBe(false);
      expect(server.stats).toMatchObject({ tcpOpen: 3, tcpEvicted: 1, tcpRejected: 0 });
    } finally {
      for (const c of clients) c.socket.destroy();
      await server.stop();
    }
  });
});

describe('dns over TCP: the idle timeout shortens as connections fill, and EDNS keepalive says so (RFC 7828)', () => {
  it('full (10 s: 100 units) up to half the cap, then linearly down to the floor (1 s: 10 units) at the cap, and back as they close', async () => {
    const { server, port } = await startServer({ maxTcpConnections: 20, maxTcpPerClient: 100, tcpIdleMs: 10_000, tcpIdleFloorMs: 1000 });
    const others: Client[] = [];
    const asker = await connect(port);
    try {
      const ask = async (id: number) => {
        asker.socket.write(KEEPALIVE_QUERY(id));
        return offered((await asker.next())[0]);
      };
      const openNow = (n: number) => until(() => (server.stats.tcpOpen === n ? true : undefined), `${n} open`);
      await openNow(1);
      expect(await ask(1)).toBe(100);
      others.push(...(await connectAll(port, Array(9).fill('127.0.0.1'))));
      await openNow(10);
      expect(await ask(2)).toBe(100); // half the cap: still the full timeout
      others.push(...(await connectAll(port, Array(5).fill('127.0.0.1'))));
      await openNow(15);
      expect(await ask(3)).toBe(55); // 10 s − 9 s × 5/10
      others.push(...(await connectAll(port, Array(5).fill('127.0.0.1'))));
      await openNow(20);
      expect(await ask(4)).toBe(10);
      for (const c of others) c.socket.destroy();
      await openNow(1);
      expect(await ask(5)).toBe(100);
      // Without the option, none comes back.
      asker.socket.write(frame(query({ id: 6, name: 'gslb.example.com', type: 6, opt: {} })));
      expect(offered((await asker.next())[0])).toBeUndefined();
    } finally {
      asker.socket.destroy();
      for (const c of others) c.socket.destroy();
      await server.stop();
    }
  });

  it('at the cap, idle connections are closed at the floor: the first after about 1 s, not the 60 s in force when few are open', async () => {
    const { server, port } = await startServer({ maxTcpConnections: 4, maxTcpPerClient: 100, tcpIdleMs: 60_000, tcpIdleFloorMs: 1000 });
    const clients = await connectAll(port, Array(4).fill('127.0.0.1'));
    try {
      const first = await Promise.race(clients.map((c) => c.closed));
      expect(first).toBeGreaterThanOrEqual(900);
      expect(first).toBeLessThan(3000); // the floor's promise, with 3× margin
      // One closed, three open: the timeout is long again (60 s − 59 s × 1/2), and the others stay.
      await sleep(1000);
      expect(clients.filter((c) => c.socket.destroyed)).toHaveLength(1);
      expect(server.stats).toMatchObject({ tcpIdleClosed: 1, tcpOpen: 3, tcpEvicted: 0 });
    } finally {
      for (const c of clients) c.socket.destroy();
      await server.stop();
    }
  });

  it.skipIf(!hasDig)('dig +tcp +keepalive: offered on TCP (10 s with few open, 1 s at the cap), never on UDP', async () => {
    const { server, port } = await startServer({ maxTcpConnections: 4, maxTcpPerClient: 100, tcpIdleMs: 10_000, tcpIdleFloorMs: 1000 });
    const clients: Client[] = [];
    try {
      const tcp = await digAsync('127.0.0.1', port, ['+tcp', '+keepalive', 'gslb.example.com', 'SOA']);
      expect(tcp.status).toBe('NOERROR');
      expect(tcp.raw).toContain('; TCP KEEPALIVE: 10.0 secs');
      const udp = await digAsync('127.0.0.1', port, ['+keepalive', 'gslb.example.com', 'SOA']);
      expect(udp.status).toBe('NOERROR');
      expect(udp.raw).not.toContain('KEEPALIVE');
      // Three open and dig's own: the cap, where the floor is in force.
      clients.push(...(await connectAll(port, Array(3).fill('127.0.0.1'))));
      await until(() => (server.stats.tcpOpen === 3 ? true : undefined), 'three open');
      const full = await digAsync('127.0.0.1', port, ['+tcp', '+keepalive', 'gslb.example.com', 'SOA']);
      expect(full.raw).toContain('; TCP KEEPALIVE: 1.0 secs');
    } finally {
      for (const c of clients) c.socket.destroy();
      await server.stop();
    }
  });
});

describe('dns over TCP: pipelined queries are counted', () => {
  it('five in one write: four pipelined; one at a time, waiting for each answer: none', async () => {
    const { server, port } = await startServer();
    const c = await connect(port);
    try {
      c.socket.write(Buffer.concat(Array.from({ length: 5 }, (_, i) => frame(query({ id: 10 + i, name: 'api.gslb.example.com' })))));
      expect(await c.next(5)).toHaveLength(5);
      expect(server.stats.tcpPipelined).toBe(4);
      for (let i = 0; i < 3; i++) {
        c.socket.write(frame(query({ id: 20 + i, name: 'api.gslb.example.com' })));
        expect(await c.next()).toHaveLength(1);
      }
      expect(server.stats).toMatchObject({ tcpPipelined: 4, tcpMessages: 8 });
      // A query whose end arrives with the next one whole: the second is pipelined.
      const two = Buffer.concat([frame(query({ id: 30, name: 'api.gslb.example.com' })), frame(query({ id: 31, name: 'api.gslb.example.com' }))]);
      c.socket.write(two.subarray(0, 10));
      await sleep(50);
      c.socket.write(two.subarray(10));
      expect(await c.next(2)).toHaveLength(2);
      const metric = await scrape(server);
      expect(metric('arus_dns_tcp_pipelined_total')).toBe(5);
      expect(metric('arus_dns_tcp_messages_total')).toBe(10);
      expect(metric('arus_dns_udp_messages_total')).toBe(0);
      await udpAsk(port, query({ name: 'api.gslb.example.com' }));
      expect((await scrape(server))('arus_dns_udp_messages_total')).toBe(1);
    } finally {
      c.socket.destroy();
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
