// Response rate limiting against the real server on loopback: client sockets
// bound to different 127.x.y.z addresses stand for different client networks.
// RRL reads a clock the test holds still, so a bucket refills only when the
// test says: how long a burst takes on a busy machine changes no count. Tests
// wait for the server to have read every query and for every reply it sent.
import dgram from 'node:dgram';
import net from 'node:net';
import { Packet } from 'dns2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rrlSchema } from '../src/config/schema.js';
import { bigConfig, query, servingState } from '../src/dns/fixtures.js';
import { createResponder, type Responder } from '../src/dns/responder.js';
import type { RrlSettings } from '../src/dns/rrl.js';
import { createDnsServer, type DnsServer } from '../src/dns/server.js';
import { silentLogger } from '../src/log.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { digAsync, hasDig } from './helpers/dig.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SG4 = ['127.0.1.11', '127.0.1.12'];
/** RRL's clock, held at 0: every bucket keeps what it had, however long the test takes. */
const stillClock = () => 0;

/**
 * A server whose zone settings carry `rrl` (loopback not exempt, so that loopback clients are limited).
 * `now` is RRL's clock; the server's own (every reply at real time) unless set.
 */
async function startServer(rrl: Partial<RrlSettings> = {}, now?: () => number): Promise<{ server: DnsServer; responder: Responder; port: number }> {
  const config = bigConfig();
  const state = servingState({ ...config, zone: { ...config.zone, rrl: rrlSchema.parse({ exempt: [], ...rrl }) } }, 5);
  const responder = createResponder({ getState: () => state, log: silentLogger(), now });
  const server = createDnsServer({ listen: [{ address: '127.0.0.1', port: 0 }], responder, log: silentLogger() });
  const port = (await server.start()).udp[0].port;
  return { server, responder, port };
}

type Tally = { full: number; truncated: number; replies: Buffer[] };

async function until(ok: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  for (const end = Date.now() + timeoutMs; !ok(); await sleep(5)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}

/**
 * Sends `n` queries (`packet`, or `packet(i)`) from `from` as fast as it can, and tallies the replies
 * until the server has read all `n` and every reply it sent (all but those RRL dropped) has come back.
 */
async function burst(responder: Responder, port: number, from: string, packet: Buffer | ((i: number) => Buffer), n: number): Promise<Tally> {
  return (await bursts(responder, port, [{ from, packet, n }]))[0];
}

/** Several bursts at once, from their own sockets; settled together (the server's counts are for all). */
async function bursts(responder: Responder, port: number, plan: { from: string; packet: Buffer | ((i: number) => Buffer); n: number }[]): Promise<Tally[]> {
  const queries = responder.stats.queries;
  const dropped = responder.stats.rrlDropped;
  const sent = plan.reduce((a, p) => a + p.n, 0);
  const sockets: dgram.Socket[] = [];
  const tallies = await Promise.all(
    plan.map(async ({ from, packet, n }) => {
      const socket = dgram.createSocket('udp4');
      sockets.push(socket);
      await new Promise<void>((r) => socket.bind(0, from, r));
      const tally: Tally = { full: 0, truncated: 0, replies: [] };
      socket.on('message', (m) => {
        tally.replies.push(m);
        if (m[2] & 0x02) tally.truncated++;
        else tally.full++;
      });
      for (let i = 0; i < n; i++) socket.send(typeof packet === 'function' ? packet(i) : packet, port, '127.0.0.1');
      return tally;
    }),
  );
  try {
    await until(() => responder.stats.queries - queries === sent, `the server to read ${sent} queries`);
    const replies = sent - (responder.stats.rrlDropped - dropped);
    await until(() => tallies.reduce((a, t) => a + t.replies.length, 0) === replies, `${replies} replies`);
  } finally {
    for (const s of sockets) s.close();
  }
  return tallies;
}

describe('rrl over UDP, at 20 answers/s and the default slip (2)', () => {
  let server: DnsServer;
  let responder: Responder;
  let port: number;
  beforeAll(async () => ({ server, responder, port } = await startServer({ responsesPerSecond: 20 }, stillClock)));
  afterAll(() => server.stop());

  it('200 queries in a burst from one network: 20 answered in full, half the rest truncated, the rest dropped; another /24 at the same time is not affected', async () => {
    const ask = query({ name: 'api.gslb.example.com', opt: {} });
    const [limited, other] = await bursts(responder, port, [
      { from: '127.0.0.1', packet: ask, n: 200 },
      { from: '127.0.1.1', packet: ask, n: 15 },
    ]);
    // A bucket holds one second's worth (20), and the clock does not move: 180 over the rate, every second one slipped.
    expect(limited.full).toBe(20);
    expect(limited.truncated).toBe(90);
    for (const r of limited.replies.filter((m) => m[2] & 0x02)) {
      const msg = Packet.parse(r);
      expect(msg.header).toMatchObject({ tc: 1, rcode: 0 });
      expect(msg.answers).toEqual([]);
      expect(r.length).toBeLessThanOrEqual(ask.length);
    }
    expect(other).toMatchObject({ full: 15, truncated: 0 });
    expect(responder.stats.rrlSlipped).toBe(limited.truncated);
    expect(responder.stats.rrlDropped).toBe(200 - limited.full - limited.truncated);
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.observeResponder(responder);
    const text = await metrics.text();
    expect(text).toContain(`arus_dns_rrl_limited_total{action="slipped"} ${limited.truncated}`);
    expect(text).toContain(`arus_dns_rrl_limited_total{action="dropped"} ${responder.stats.rrlDropped}`);
  });

  it('over TCP from the same (limited) network: every query answered in full', async () => {
    expect((await burst(responder, port, '127.0.2.1', query({ name: 'api.gslb.example.com' }), 100)).full).toBe(20); // UDP: limited
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.2.1' });
    const frames = Array.from({ length: 100 }, (_, i) => {
      const m = query({ id: i, name: 'api.gslb.example.com' });
      return Buffer.concat([Buffer.from([0, m.length]), m]);
    });
    socket.write(Buffer.concat(frames));
    const replies: Buffer[] = [];
    let buffered = Buffer.alloc(0);
    await new Promise<void>((resolve) =>
      socket.on('data', (chunk) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          replies.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
          buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
        }
        if (replies.length === 100) resolve();
      }),
    );
    socket.destroy();
    for (const [i, r] of replies.entries()) {
      const msg = Packet.parse(r);
      expect(msg.header).toMatchObject({ id: i, tc: 0 });
      expect(msg.answers.map((a) => a.address).sort()).toEqual(SG4);
    }
  });

  it('the bucket is the source network, not the ECS subnet', async () => {
    const withEcs = (i: number) => query({ name: 'api.gslb.example.com', opt: { options: [{ code: 8, data: [0, 1, 24, 0, 36, 66, i] }] } });
    // 100 ECS subnets from one source: one bucket of 20, not 100 of them.
    expect((await burst(responder, port, '127.0.3.1', withEcs, 100)).full).toBe(20);
  });

  it('REFUSED (out of zone) is limited in its own bucket, and carries no records', async () => {
    const t = await burst(responder, port, '127.0.4.1', query({ name: 'example.org' }), 60);
    expect(t).toMatchObject({ full: 20, truncated: 20 }); // errorsPerSecond: 20 by default
    for (const r of t.replies) {
      const msg = Packet.parse(r);
      expect(msg.header.rcode).toBe(5);
      expect(msg.header.aa).toBe(0);
      expect([msg.answers.length, msg.authorities.length, msg.additionals.length]).toEqual([0, 0, 0]);
    }
  });
});

describe.skipIf(!hasDig)('rrl: dig falls back to TCP on a slipped reply', () => {
  it('gets the full answer over TCP', async () => {
    const { server, responder, port } = await startServer({ responsesPerSecond: 1, slip: 1 }, stillClock);
    try {
      expect((await burst(responder, port, '127.0.6.1', query({ name: 'api.gslb.example.com' }), 10)).full).toBe(1); // the bucket is empty
      const r = await digAsync('127.0.0.1', port, ['-b', '127.0.6.1', 'api.gslb.example.com', 'A']);
      expect(r.raw).toContain('Truncated, retrying in TCP mode');
      expect(r.raw).toMatch(/;; SERVER: .*\(TCP\)/);
      expect(r.status).toBe('NOERROR');
      expect(r.answers.map((a) => a.data).sort()).toEqual(SG4);
    } finally {
      await server.stop();
    }
  });
});

describe('rrl: a flood from many networks keeps the table bounded', () => {
  it('300 source /24s, a table of 100: bounded, and the server still answers', async () => {
    const { server, responder, port } = await startServer({ maxTableSize: 100, responsesPerSecond: 20 });
    try {
      const sockets = await Promise.all(
        Array.from({ length: 300 }, (_, i) => {
          const s = dgram.createSocket('udp4');
          s.on('message', () => {});
          return new Promise<dgram.Socket>((r) => s.bind(0, `127.${10 + (i >> 8)}.${i & 0xff}.1`, () => r(s)));
        }),
      );
      for (let round = 0; round < 3; round++) for (const s of sockets) s.send(query({ name: 'nope.gslb.example.com' }), port, '127.0.0.1');
      await until(() => responder.stats.queries === 900, 'the server to read 900 queries');
      for (const s of sockets) s.close();
      expect(responder.rrl.size()).toBeLessThanOrEqual(100);
      expect(responder.rrl.stats.evicted).toBeGreaterThan(0);
      const t = await burst(responder, port, '127.0.7.1', query({ name: 'api.gslb.example.com' }), 1);
      expect(Packet.parse(t.replies[0]).answers.map((a) => a.address).sort()).toEqual(SG4);
    } finally {
      await server.stop();
    }
  });
});
