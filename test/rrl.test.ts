// Response rate limiting against the real server on loopback: client sockets
// bound to different 127.x.y.z addresses stand for different client networks.
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

/** A server whose zone settings carry `rrl` (loopback not exempt, so that loopback clients are limited). */
async function startServer(rrl: Partial<RrlSettings> = {}): Promise<{ server: DnsServer; responder: Responder; port: number }> {
  const config = bigConfig();
  const state = servingState({ ...config, zone: { ...config.zone, rrl: rrlSchema.parse({ exempt: [], ...rrl }) } }, 5);
  const responder = createResponder({ getState: () => state, log: silentLogger() });
  const server = createDnsServer({ listen: [{ address: '127.0.0.1', port: 0 }], responder, log: silentLogger() });
  const port = (await server.start()).udp[0].port;
  return { server, responder, port };
}

type Tally = { full: number; truncated: number; replies: Buffer[] };

/** Sends `n` copies of `packet` from `from` as fast as it can; tallies the replies that come within `waitMs`. */
async function burst(port: number, from: string, packet: Buffer, n: number, waitMs = 700): Promise<Tally> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, from, r));
  const tally: Tally = { full: 0, truncated: 0, replies: [] };
  socket.on('message', (m) => {
    tally.replies.push(m);
    if (m[2] & 0x02) tally.truncated++;
    else tally.full++;
  });
  for (let i = 0; i < n; i++) socket.send(packet, port, '127.0.0.1');
  await sleep(waitMs);
  socket.close();
  return tally;
}

describe('rrl over UDP, at 20 answers/s and the default slip (2)', () => {
  let server: DnsServer;
  let responder: Responder;
  let port: number;
  beforeAll(async () => ({ server, responder, port } = await startServer({ responsesPerSecond: 20 })));
  afterAll(() => server.stop());

  it('200 queries in a burst from one network: ~20 answered in full, about half the rest truncated, the rest dropped; another /24 at the same time is not affected', async () => {
    const ask = query({ name: 'api.gslb.example.com', opt: {} });
    const [limited, other] = await Promise.all([burst(port, '127.0.0.1', ask, 200), burst(port, '127.0.1.1', ask, 15)]);
    expect(limited.full).toBeGreaterThanOrEqual(20);
    expect(limited.full).toBeLessThanOrEqual(40); // the burst takes a while on a loaded machine: the bucket refills meanwhile
    const rest = 200 - limited.full;
    expect(limited.truncated).toBeGreaterThanOrEqual(Math.floor(rest / 2) - 2);
    expect(limited.truncated).toBeLessThanOrEqual(Math.ceil(rest / 2) + 2);
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
    await burst(port, '127.0.2.1', query({ name: 'api.gslb.example.com' }), 100, 100);
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
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, '127.0.3.1', r));
    let full = 0;
    socket.on('message', (m) => void (m[2] & 0x02 || full++));
    for (let i = 0; i < 100; i++) socket.send(withEcs(i), port, '127.0.0.1');
    await sleep(500);
    socket.close();
    expect(full).toBeLessThanOrEqual(40);
  });

  it('REFUSED (out of zone) is limited in its own bucket, and carries no records', async () => {
    const t = await burst(port, '127.0.4.1', query({ name: 'example.org' }), 60);
    expect(t.full).toBeGreaterThanOrEqual(20);
    expect(t.full).toBeLessThanOrEqual(40);
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
    const { server, port } = await startServer({ responsesPerSecond: 1, slip: 1 });
    try {
      await burst(port, '127.0.6.1', query({ name: 'api.gslb.example.com' }), 10, 50);
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
      await sleep(500);
      for (const s of sockets) s.close();
      expect(responder.stats.queries).toBe(900);
      expect(responder.rrl.size()).toBeLessThanOrEqual(100);
      expect(responder.rrl.stats.evicted).toBeGreaterThan(0);
      const t = await burst(port, '127.0.7.1', query({ name: 'api.gslb.example.com' }), 1, 300);
      expect(Packet.parse(t.replies[0]).answers.map((a) => a.address).sort()).toEqual(SG4);
    } finally {
      await server.stop();
    }
  });
});
