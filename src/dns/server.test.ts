// End to end: the real server, responder, steer() and locator on loopback
// ports, queried with Node's resolver, dig and hand-made packets.
import { execFile, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import net, { type AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { Packet } from 'dns2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { bigConfig, query, servingState } from './fixtures.js';
import { createResponder } from './responder.js';
import { createDnsServer, type DnsServer } from './server.js';

const run = promisify(execFile);
const HAS_DIG = !spawnSync('dig', ['-v']).error;
if (!HAS_DIG) console.warn('dig not found on PATH: skipping the dig end-to-end tests (apt-get install bind9-dnsutils)');

const state = servingState(bigConfig(), 42);
let server: DnsServer;
let v4: AddressInfo;
let v6: AddressInfo;
let tcp4: AddressInfo;

beforeAll(async () => {
  const responder = createResponder({ getState: () => state, log: silentLogger() });
  server = createDnsServer({
    listen: [
      { address: '127.0.0.1', port: 0 },
      { address: '::1', port: 0 },
    ],
    responder,
    log: silentLogger(),
    tcpIdleMs: 2000,
  });
  const bound = await server.start();
  [v4, v6] = bound.udp;
  tcp4 = bound.tcp[0];
});

afterAll(async () => {
  await server?.stop();
});

describe('dns server: listeners', () => {
  it('binds UDP and TCP on the same ephemeral port for each address', () => {
    expect(v4).toMatchObject({ address: '127.0.0.1', family: 'IPv4' });
    expect(v6).toMatchObject({ address: '::1', family: 'IPv6' });
    expect(v4.port).toBeGreaterThan(0);
    expect(tcp4.port).toBe(v4.port);
  });
});

describe.each([
  ['IPv4', () => `127.0.0.1:${v4.port}`],
  ['IPv6', () => `[::1]:${v6.port}`],
])('dns server over %s: Node resolver', (_, addr) => {
  const resolver = () => {
    const r = new Resolver({ timeout: 2000, tries: 1 });
    r.setServers([addr()]);
    return r;
  };

  it('SOA and NS at the apex', async () => {
    const r = resolver();
    expect(await r.resolveSoa('gslb.example.com')).toMatchObject({ nsname: 'ns1.gslb.example.com', hostmaster: 'hostmaster.example.com', serial: 42, minttl: 60 });
    expect((await r.resolveNs('gslb.example.com')).sort()).toEqual(['ns1.gslb.example.com', 'ns2.gslb.example.com']);
  });

  it('A and AAAA for api', async () => {
    const r = resolver();
    expect((await r.resolve4('api.gslb.example.com')).sort()).toEqual(['127.0.1.11', '127.0.1.12']);
    expect((await r.resolve6('api.gslb.example.com')).sort()).toEqual(['2001:db8:113::11', '2001:db8:113::12']);
    expect((await r.resolve4('sg.api.gslb.example.com', { ttl: true }))[0].ttl).toBe(30);
  });

  it('NXDOMAIN, NODATA and REFUSED', async () => {
    const r = resolver();
    await expect(r.resolve4('nope.gslb.example.com')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(r.resolveTxt('api.gslb.example.com')).rejects.toMatchObject({ code: 'ENODATA' });
    await expect(r.resolve4('example.org')).rejects.toMatchObject({ code: 'EREFUSED' });
  });

  it('a large answer (32 AAAA)', async () => {
    expect(await resolver().resolve6('bulk.gslb.example.com')).toHaveLength(32);
  });
});

type Dig = { status: string; flags: string[]; answers: string[][]; authority: string[][]; additional: string[][]; subnet?: string; server: string; out: string };

async function dig(family: 4 | 6, ...args: string[]): Promise<Dig> {
  const at = family === 4 ? ['@127.0.0.1', '-p', String(v4.port)] : ['@::1', '-p', String(v6.port)];
  const { stdout: out } = await run('dig', [...at, '+tries=1', '+time=2', ...args]);
  const section = (title: string) => {
    const start = out.indexOf(`;; ${title} SECTION:\n`);
    if (start < 0) return [];
    const body = out.slice(start).split('\n\n')[0].split('\n').slice(1);
    return body.map((line) => line.split(/\s+/));
  };
  return {
    status: /status: (\w+)/.exec(out)?.[1] ?? '',
    flags: (/;; flags: ([^;]*);/.exec(out)?.[1] ?? '').trim().split(' '),
    answers: section('ANSWER'),
    authority: section('AUTHORITY'),
    additional: section('ADDITIONAL'),
    subnet: /CLIENT-SUBNET: (\S+)/.exec(out)?.[1],
    server: /;; SERVER: .*\((\w+)\)/.exec(out)?.[1] ?? '',
    out,
  };
}

const rdata = (rows: string[][]) => rows.map((r) => r[4]).sort();

describe.skipIf(!HAS_DIG)('dns server: dig', () => {
  it('apex SOA (AA, no RA) and NS with glue', async () => {
    const soa = await dig(4, 'gslb.example.com', 'SOA');
    expect(soa.status).toBe('NOERROR');
    expect(soa.flags).toEqual(['qr', 'aa', 'rd']);
    expect(soa.answers[0].slice(3)).toEqual(['SOA', 'ns1.gslb.example.com.', 'hostmaster.example.com.', '42', '3600', '600', '604800', '60']);
    const ns = await dig(6, 'gslb.example.com', 'NS');
    expect(rdata(ns.answers)).toEqual(['ns1.gslb.example.com.', 'ns2.gslb.example.com.']);
    expect(rdata(ns.additional)).toEqual(['192.0.2.53', '198.51.100.53', '2001:db8:53::1', '2001:db8:53::2']);
  });

  it('A and AAAA for api', async () => {
    expect(rdata((await dig(4, 'api.gslb.example.com', 'A')).answers)).toEqual(['127.0.1.11', '127.0.1.12']);
    expect(rdata((await dig(6, 'api.gslb.example.com', 'AAAA')).answers)).toEqual(['2001:db8:113::11', '2001:db8:113::12']);
  });

  it.each([
    ['36.66.0.0/24', ['127.0.1.21', '127.0.1.22']],
    ['165.21.0.0/16', ['127.0.1.11', '127.0.1.12']],
    ['171.96.0.0/16', ['127.0.1.31', '127.0.1.32']],
    ['112.198.0.0/16', ['127.0.1.41', '127.0.1.42']],
  ])('+subnet=%s → %j with a non-zero scope', async (subnet, want) => {
    const r = await dig(4, 'api.gslb.example.com', `+subnet=${subnet}`);
    expect(rdata(r.answers)).toEqual(want);
    const [addr, source, scope] = r.subnet!.split('/');
    expect(`${addr}/${source}`).toBe(subnet);
    expect(Number(scope)).toBeGreaterThan(0);
  });

  it('+tcp', async () => {
    const r = await dig(6, 'api.gslb.example.com', '+tcp', '+subnet=36.66.0.0/24');
    expect(r.server).toBe('TCP');
    expect(rdata(r.answers)).toEqual(['127.0.1.21', '127.0.1.22']);
  });

  it('example.org is REFUSED, without AA', async () => {
    const r = await dig(4, 'example.org', 'A');
    expect(r.status).toBe('REFUSED');
    expect(r.flags).not.toContain('aa');
  });

  it('nope.gslb.example.com is NXDOMAIN with the SOA', async () => {
    const r = await dig(4, 'nope.gslb.example.com', 'A');
    expect(r.status).toBe('NXDOMAIN');
    expect(r.flags).toContain('aa');
    expect(r.authority[0].slice(0, 4)).toEqual(['gslb.example.com.', '60', 'IN', 'SOA']);
  });

  it('TXT at api is NODATA with the SOA', async () => {
    const r = await dig(4, 'api.gslb.example.com', 'TXT');
    expect(r.status).toBe('NOERROR');
    expect(r.answers).toEqual([]);
    expect(r.authority[0][3]).toBe('SOA');
  });

  it('0x20 mixed case is echoed as asked', async () => {
    const r = await dig(4, 'aPi.GsLb.eXaMpLe.CoM', 'A');
    expect(r.out).toContain(';aPi.GsLb.eXaMpLe.CoM.\t\tIN\tA');
    expect(r.answers[0][0]).toBe('aPi.GsLb.eXaMpLe.CoM.');
  });

  it('TC for a small buffer with many answers, then all of them over TCP', async () => {
    const udp = await dig(4, 'bulk.gslb.example.com', 'A', '+bufsize=512', '+ignore');
    expect(udp.flags).toContain('tc');
    expect(udp.answers).toEqual([]);
    const tcp = await dig(4, 'bulk.gslb.example.com', 'A', '+bufsize=512', '+tcp');
    expect(tcp.flags).not.toContain('tc');
    expect(tcp.answers).toHaveLength(32);
  });

  it('EDNS version 1 gets BADVERS', async () => {
    const r = await dig(4, 'api.gslb.example.com', '+edns=1', '+noednsnegotiation');
    expect(r.status).toBe('BADVERS');
    expect(r.out).toContain('EDNS: version: 0');
  });

  it('pinned name sg.api.gslb.example.com answers from sg whatever the client', async () => {
    const r = await dig(4, 'sg.api.gslb.example.com', 'A', '+subnet=36.66.0.0/24');
    expect(rdata(r.answers)).toEqual(['127.0.1.11', '127.0.1.12']);
    expect(r.subnet).toBe('36.66.0.0/24/0');
  });
});

function udpExchange(packet: Buffer, timeoutMs = 1000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(undefined);
    }, timeoutMs);
    socket.on('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(msg);
    });
    socket.send(packet, v4.port, '127.0.0.1');
  });
}

function tcpConnect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: tcp4.port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

const frame = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]);

describe('dns server: hand-made packets', () => {
  it('FORMERR for a malformed query; nothing for a runt', async () => {
    const bad = query({ id: 0x4242, rawName: [3, 97, 112, 105, 0xc0, 12] });
    const reply = await udpExchange(bad);
    expect(Packet.parse(reply!).header).toMatchObject({ id: 0x4242, qr: 1, rcode: 1 });
    expect(await udpExchange(Buffer.from([1, 2, 3]), 300)).toBeUndefined();
  });

  it('TCP: two queries in one write get two answers, in order', async () => {
    const socket = await tcpConnect();
    const replies: Buffer[] = [];
    let buffered = Buffer.alloc(0);
    const done = new Promise<void>((resolve) =>
      socket.on('data', (chunk) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          replies.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
          buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
        }
        if (replies.length === 2) resolve();
      }),
    );
    socket.write(Buffer.concat([frame(query({ id: 1, name: 'gslb.example.com', type: 6 })), frame(query({ id: 2, name: 'api.gslb.example.com' }))]));
    await done;
    socket.destroy();
    const [first, second] = replies.map((r) => Packet.parse(r));
    expect(first.header.id).toBe(1);
    expect(first.answers[0].type).toBe(6);
    expect(second.header.id).toBe(2);
    expect(second.answers.map((a) => a.address).sort()).toEqual(['127.0.1.11', '127.0.1.12']);
  });

  it('TCP: a query split across writes is answered once complete', async () => {
    const socket = await tcpConnect();
    const message = frame(query({ id: 7, name: 'gslb.example.com', type: 6 }));
    const reply = new Promise<Buffer>((resolve) => socket.once('data', resolve));
    socket.write(message.subarray(0, 1));
    await new Promise((r) => setTimeout(r, 50));
    socket.write(message.subarray(1, 20));
    await new Promise((r) => setTimeout(r, 50));
    socket.write(message.subarray(20));
    expect(Packet.parse((await reply).subarray(2)).header.id).toBe(7);
    socket.destroy();
  });

  it('TCP: a garbage frame closes the connection', async () => {
    const socket = await tcpConnect();
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('data', () => {});
    socket.write(Buffer.from([0, 3, 1, 2, 3]));
    await closed;
    expect(server.stats.tcpBadFrames).toBeGreaterThan(0);
  });

  it('TCP: an idle connection is closed', async () => {
    const socket = await tcpConnect();
    const start = Date.now();
    await new Promise<void>((resolve) => socket.on('close', () => resolve()));
    expect(Date.now() - start).toBeGreaterThanOrEqual(1500);
  });
});

describe('dns server: limits', () => {
  it('at the cap, an idle connection is closed for a new one; a busy one is not, and the new one is refused', async () => {
    const responder = createResponder({ getState: () => state, log: silentLogger() });
    const small = createDnsServer({ listen: [{ address: '127.0.0.1', port: 0 }], responder, log: silentLogger(), maxTcpConnections: 1, tcpIdleFloorMs: 10_000 });
    const { tcp } = await small.start();
    try {
      const connect = () =>
        new Promise<net.Socket>((resolve) => {
          const s = net.connect(tcp[0].port, '127.0.0.1', () => resolve(s));
          s.on('error', () => {});
        });
      const closed = (s: net.Socket) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.on('close', () => resolve())));
      const idle = await connect();
      const busy = await connect();
      await closed(idle);
      expect(small.stats).toMatchObject({ tcpEvicted: 1, tcpRejected: 0, tcpOpen: 1 });
      // The first octet of a length prefix: a query in progress.
      busy.write(Buffer.from([0]));
      await new Promise((r) => setTimeout(r, 100));
      const third = await connect();
      await closed(third);
      expect(small.stats).toMatchObject({ tcpEvicted: 1, tcpRejected: 1, tcpOpen: 1 });
      expect(busy.destroyed).toBe(false);
      busy.destroy();
    } finally {
      await small.stop();
    }
  });
});
