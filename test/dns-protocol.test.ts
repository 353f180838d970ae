// Protocol corners against the real server on loopback: the DNS Flag Day EDNS
// compliance tests (ISC's ednscomp: dns, aa, rd, tc, zflag, opcode, edns,
// edns1, edns@512, ednsopt, edns1opt, do, ednsflags, optlist, ednstcp, and
// cookies) asked with dig, and every header and EDNS corner of RFC 1035,
// RFC 6891, RFC 6895 and RFC 7828 asked with hand-built packets, each reply
// checked octet for octet: rcode, flags, sections, and what the OPT carries.
// Replies never echo what the client should not see.
import dgram from 'node:dgram';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigConfig, decodeReply, ecsOf, keepalive, query, servingState, type DecodedReply, type QuerySpec } from '../src/dns/fixtures.js';
import { createResponder } from '../src/dns/responder.js';
import { createDnsServer, type DnsServer } from '../src/dns/server.js';
import { silentLogger } from '../src/log.js';
import { digAsync, hasDig } from './helpers/dig.js';

const state = servingState(bigConfig(), 7);
let server: DnsServer;
let port: number;

beforeAll(async () => {
  const responder = createResponder({ getState: () => state, log: silentLogger() });
  server = createDnsServer({ listen: [{ address: '127.0.0.1', port: 0 }], responder, log: silentLogger() });
  port = (await server.start()).udp[0].port;
});
afterAll(() => server.stop());

const SOA = 6;
const OPT = 41;
const RCODE = { NOERROR: 0, FORMERR: 1, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 };

/**
 * Sends `packets` from one UDP socket, in order, and collects replies until one with `untilId` comes:
 * what a message with no reply (QR=1) got is seen without waiting for a timeout, as the query after it is answered.
 */
function udp(packets: Buffer[], untilId: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const got: Buffer[] = [];
    const timer = setTimeout(() => (s.close(), reject(new Error(`no reply with id ${untilId}`))), 5000);
    s.on('message', (m) => {
      got.push(m);
      if (m.readUInt16BE(0) === untilId) {
        clearTimeout(timer);
        s.close();
        resolve(got);
      }
    });
    for (const p of packets) s.send(p, port, '127.0.0.1');
  });
}

async function udpAsk(spec: QuerySpec): Promise<DecodedReply> {
  const id = spec.id ?? 0x1234;
  const [reply] = await udp([query({ ...spec, id })], id);
  return decodeReply(reply);
}

/** One framed message over a new TCP connection: its reply, or `undefined` when the server closes first. */
function tcpAsk(packet: Buffer): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => (socket.destroy(), reject(new Error('no TCP reply'))), 5000);
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
      }
    });
    socket.on('close', () => (clearTimeout(timer), resolve(undefined)));
    socket.write(Buffer.concat([Buffer.from([packet.length >> 8, packet.length & 0xff]), packet]));
  });
}

async function tcpQuery(spec: QuerySpec): Promise<DecodedReply> {
  const reply = await tcpAsk(query(spec));
  if (!reply) throw new Error('the server closed the connection');
  return decodeReply(reply);
}

/** dig's OPT pseudosection: the EDNS line and one line per option ("COOKIE: …", "TCP KEEPALIVE: …"). */
function digOpt(raw: string): { edns?: string; options: string[] } {
  const m = /;; OPT PSEUDOSECTION:\n([\s\S]*?)(?:\n;; |\n\n|$)/.exec(raw);
  if (!m) return { options: [] };
  const lines = m[1].split('\n').map((l) => l.replace(/^; /, ''));
  return { edns: lines.find((l) => l.startsWith('EDNS:')), options: lines.filter((l) => !l.startsWith('EDNS:')) };
}

const ask = (...args: string[]) => digAsync('127.0.0.1', port, args);
const ZONE = 'gslb.example.com';

describe.skipIf(!hasDig)('DNS Flag Day EDNS compliance tests (ednscomp), with dig', () => {
  it('dns: plain DNS, no EDNS: NOERROR, AA, the SOA, no OPT', async () => {
    const r = await ask('+norec', '+noedns', ZONE, 'SOA');
    expect(r.status).toBe('NOERROR');
    expect(r.flags).toEqual(['qr', 'aa']);
    expect(r.answers.map((a) => a.type)).toEqual(['SOA']);
    expect(digOpt(r.raw).edns).toBeUndefined();
  });

  it('aa: AA set in the query is ignored; the reply has AA because the server is authoritative', async () => {
    const r = await ask('+norec', '+noedns', '+aaflag', ZONE, 'SOA');
    expect(r.status).toBe('NOERROR');
    expect(r.flags).toEqual(['qr', 'aa']);
  });

  it('rd: RD copied, RA never', async () => {
    const r = await ask('+rec', '+noedns', ZONE, 'SOA');
    expect(r.flags).toEqual(['qr', 'aa', 'rd']);
  });

  it('tc: TC set in the query is ignored', async () => {
    const r = await ask('+norec', '+noedns', '+tcflag', ZONE, 'SOA');
    expect(r.status).toBe('NOERROR');
    expect(r.flags).toEqual(['qr', 'aa']);
    expect(r.answers).toHaveLength(1);
  });

  it('zflag: the reserved header bit set: answered normally, the bit clear in the reply', async () => {
    const r = await ask('+norec', '+noedns', '+zflag', ZONE, 'SOA');
    expect(r.status).toBe('NOERROR');
    expect(r.flags).toEqual(['qr', 'aa']);
    expect(r.raw).not.toContain('MBZ');
    expect(r.answers).toHaveLength(1);
  });

  it('opcode: an unknown opcode, header only, no EDNS: NOTIMP, opcode echoed, no question, no OPT', async () => {
    const r = await ask('+norec', '+noedns', '+opcode=15', '+header-only', ZONE);
    expect(r.status).toBe('NOTIMP');
    expect(r.raw).toContain('opcode: RESERVED15');
    expect(r.raw).toContain('QUERY: 0, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 0');
    expect(digOpt(r.raw).edns).toBeUndefined();
  });

  it('opcode with EDNS and a question: NOTIMP, the question echoed (RFC 6895), the OPT of version 0, nothing else', async () => {
    const r = await ask('+norec', '+opcode=15', ZONE, 'SOA');
    expect(r.status).toBe('NOTIMP');
    expect(r.raw).toContain('QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 1');
    expect(r.raw).toMatch(/;gslb\.example\.com\.\s+IN\s+SOA/);
    expect(digOpt(r.raw)).toEqual({ edns: 'EDNS: version: 0, flags:; udp: 1232', options: [] });
  });

  it('edns: NOERROR, the SOA, an OPT of version 0 with our payload size', async () => {
    const r = await ask('+norec', '+edns=0', '+nocookie', ZONE, 'SOA');
    expect(r.status).toBe('NOERROR');
    expect(r.answers.map((a) => a.type)).toEqual(['SOA']);
    expect(digOpt(r.raw)).toEqual({ edns: 'EDNS: version: 0, flags:; udp: 1232', options: [] });
  });

  it('edns1: EDNS version 1: BADVERS, an OPT of version 0, no answer', async () => {
    const r = await ask('+norec', '+edns=1', '+noednsneg', ZONE, 'SOA');
    expect(r.status).toBe('BADVERS');
    expect(r.answers).toEqual([]);
    expect(r.raw).toContain('QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 1');
    expect(digOpt(r.raw)).toEqual({ edns: 'EDNS: version: 0, flags:; udp: 1232', options: [] });
  });

  it('edns@512: a client size of 512 and a longer answer: at most 512 octets, TC set', async () => {
    const r = await ask('+norec', '+edns=0', '+bufsize=512', '+ignore', 'bulk.gslb.example.com', 'AAAA');
    expect(r.flags).toContain('tc');
    expect(Number(/MSG SIZE {2}rcvd: (\d+)/.exec(r.raw)?.[1])).toBeLessThanOrEqual(512);
  });

  it('ednsopt: an unknown option is ignored and not echoed', async () => {
    const r = await ask('+norec', '+ednsopt=100', '+nocookie', ZONE, 'SOA');
    expect(r.status).toBe('NOERROR');
    expect(r.answers).toHaveLength(1);
    expect(digOpt(r.raw)).toEqual({ edns: 'EDNS: version: 0, flags:; udp: 1232', options: [] });
  });

  it('edns1opt: version 1 with an unknown option: BADVERS, version 0, the option not echoed', async () => {
    const r = await ask('+norec', '+edns=1', '+noednsneg', '+ednsopt=100', ZONE, 'SOA');
    expect(r.status).toBe('BADVERS');
    expect(r.answers).toEqual([]);
    expect(digOpt(r.raw)).toEqual({ edns: 'EDNS: version: 0, flags:; udp: 1232', options: [] });
  });

  it('do: the DO bit is copied', async () => {
    const r = await ask('+norec', '+dnssec', '+nocookie', ZONE, 'SOA');
    expect(r.status).toBe('NOERROR');
    expect(digOpt(r.raw).edns).toBe('EDNS: version: 0, flags: do; udp: 1232');
  });

  it('ednsflags: an unknown EDNS flag (0x0080) is not echoed', async () => {
    const r = await ask('+norec', '+ednsflags=0x80', '+nocookie', ZONE, 'SOA');
    expect(r.status).toBe('NOERROR');
    expect(digOpt(r.raw).edns).toBe('EDNS: version: 0, flags:; udp: 1232');
    expect(r.raw).not.toContain('MBZ');
  });

  it('optlist: NSID, ECS, EXPIRE and COOKIE asked: only ECS comes back (the others are not implemented)', async () => {
    const r = await ask('+norec', '+nsid', '+subnet=0.0.0.0/0', '+expire', '+cookie', ZONE, 'SOA');
    expect(r.status).toBe('NOERROR');
    expect(digOpt(r.raw).options).toEqual(['CLIENT-SUBNET: 0.0.0.0/0/0']);
  });

  it('ednstcp: EDNS over TCP: NOERROR with an OPT', async () => {
    const r = await ask('+norec', '+tcp', '+edns=0', '+nocookie', ZONE, 'SOA');
    expect(r.status).toBe('NOERROR');
    expect(r.answers).toHaveLength(1);
    expect(digOpt(r.raw)).toEqual({ edns: 'EDNS: version: 0, flags:; udp: 1232', options: [] });
  });

  it.each([['+cookie'], ['+cookie=0102030405060708'], ['+cookie=01020304050607080102030405060708090a0b0c0d0e0f10']])(
    'cookie (%s): a server without cookies ignores the option (RFC 6891 §6.1.2, RFC 7873): NOERROR, no COOKIE back',
    async (cookie) => {
      const r = await ask('+norec', cookie, ZONE, 'SOA');
      expect(r.status).toBe('NOERROR');
      expect(r.answers).toHaveLength(1);
      expect(digOpt(r.raw).options).toEqual([]);
    },
  );

  it('keepalive over UDP: ignored, never sent', async () => {
    const r = await ask('+norec', '+keepalive', '+nocookie', ZONE, 'SOA');
    expect(r.status).toBe('NOERROR');
    expect(digOpt(r.raw).options).toEqual([]);
  });
});

describe('header corners (RFC 1035, RFC 6895), hand-built', () => {
  it('QR=1 gets no reply (UDP), and closes the stream (TCP)', async () => {
    const replies = await udp([query({ id: 1, flags: 0x8100 }), query({ id: 2 })], 2);
    expect(replies.map((r) => r.readUInt16BE(0))).toEqual([2]);
    expect(await tcpAsk(query({ id: 3, flags: 0x8100 }))).toBeUndefined();
  });

  it('QDCOUNT 0 without EDNS: FORMERR, a bare header', async () => {
    const [raw] = await udp([query({ id: 5, qdcount: 0 }).subarray(0, 12)], 5);
    expect(raw.length).toBe(12);
    expect(decodeReply(raw)).toMatchObject({ id: 5, qr: true, opcode: 0, rcode: RCODE.FORMERR, counts: { qd: 0, an: 0, ns: 0, ar: 0 } });
  });

  it('QDCOUNT 0 with EDNS: FORMERR, no question, our OPT (the DO bit copied)', async () => {
    const packet = Buffer.concat([query({ qdcount: 0, arcount: 1 }).subarray(0, 12), query({ opt: { dnssecOk: true } }).subarray(12 + 22 + 4)]);
    const [raw] = await udp([packet], 0x1234);
    const r = decodeReply(raw);
    expect(r).toMatchObject({ rcode: RCODE.FORMERR, counts: { qd: 0, an: 0, ns: 0, ar: 1 }, opt: { size: 1232, version: 0, flags: 0x8000, options: [] } });
  });

  it('QDCOUNT 0 with an unknown opcode: NOTIMP', async () => {
    const [raw] = await udp([query({ flags: (9 << 11) | 0x0100, qdcount: 0 }).subarray(0, 12)], 0x1234);
    expect(decodeReply(raw)).toMatchObject({ opcode: 9, rcode: RCODE.NOTIMP, rd: true, counts: { qd: 0, an: 0, ns: 0, ar: 0 } });
  });

  it('QDCOUNT 2: FORMERR, a bare header (the questions are not read, not echoed)', async () => {
    const [raw] = await udp([query({ qdcount: 2, opt: {} })], 0x1234);
    expect(raw.length).toBe(12);
    expect(decodeReply(raw)).toMatchObject({ rcode: RCODE.FORMERR, counts: { qd: 0, an: 0, ns: 0, ar: 0 } });
  });

  it.each([1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15])('opcode %i: NOTIMP, the opcode and question echoed, the OPT of version 0, nothing else', async (opcode) => {
    const r = await udpAsk({ flags: (opcode << 11) | 0x0100, name: 'API.gslb.example.com', opt: { dnssecOk: true, options: [ecsOf('36.66.0.0/24'), { code: 100, data: [1] }] } });
    expect(r).toMatchObject({ qr: true, opcode, rcode: RCODE.NOTIMP, aa: false, rd: true, counts: { qd: 1, an: 0, ns: 0, ar: 1 } });
    expect(r.question).toEqual({ name: 'API.gslb.example.com', type: 1, qclass: 1 });
    // ECS is echoed on NOTIMP as on every other reply to a readable OPT (scope 0); the unknown option is not.
    expect(r.opt).toEqual({ size: 1232, version: 0, flags: 0x8000, options: [{ code: 8, data: [0, 1, 24, 0, 36, 66, 0] }] });
  });

  it.each([
    ['the reserved Z bit', 0x0140, { z: false }],
    ['AD', 0x0120, { ad: false }],
    ['CD (copied, RFC 4035 §3.1.6)', 0x0110, { cd: true }],
    ['AA and TC', 0x0700, { aa: true, tc: false }],
    ['RA', 0x0180, { ra: false }],
    ['an RCODE', 0x0105, { rcode: 0 }],
    ['every one of them', 0x07f5, { z: false, ad: false, cd: true, aa: true, tc: false, ra: false, rcode: 0 }],
  ])('%s set in a query: answered normally, and the reply shows only what it should', async (_, flags, want) => {
    const r = await udpAsk({ flags, name: ZONE, type: SOA });
    expect(r).toMatchObject({ qr: true, opcode: 0, aa: true, tc: false, rd: true, ra: false, z: false, ad: false, rcode: 0, counts: { qd: 1, an: 1, ns: 0, ar: 0 }, ...want });
    expect(r.types.an).toEqual([SOA]);
  });

  it.each([
    ['an answer record', { ancount: 1 }],
    ['an authority record', { nscount: 1 }],
  ])('%s in a query is read and ignored (as Knot): answered normally', async (_, counts) => {
    const record = [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1];
    const r = await udpAsk({ ...counts, name: ZONE, type: SOA, tail: record });
    expect(r).toMatchObject({ rcode: 0, counts: { qd: 1, an: 1, ns: 0, ar: 0 } });
    expect(r.types.an).toEqual([SOA]);
  });

  it('an answer count with no record behind it: FORMERR, the question echoed, no OPT', async () => {
    const r = await udpAsk({ ancount: 1, name: ZONE, type: SOA });
    expect(r).toMatchObject({ rcode: RCODE.FORMERR, counts: { qd: 1, an: 0, ns: 0, ar: 0 } });
  });
});

describe('EDNS corners (RFC 6891), hand-built', () => {
  it.each([
    ['0x4000', 0x4000, 0],
    ['0x0080', 0x0080, 0],
    ['all 15 Z bits, with DO', 0xffff, 0x8000],
  ])('unknown EDNS flags (%s) are not echoed; DO is copied', async (_, flags, echoed) => {
    const r = await udpAsk({ name: ZONE, type: SOA, opt: { flags } });
    expect(r).toMatchObject({ rcode: 0, counts: { an: 1, ar: 1 } });
    expect(r.opt).toEqual({ size: 1232, version: 0, flags: echoed, options: [] });
  });

  it.each([
    ['an unknown option (100)', [{ code: 100, data: [1, 2, 3] }]],
    ['NSID (not implemented)', [{ code: 3, data: [] }]],
    ['a client cookie', [{ code: 10, data: [1, 2, 3, 4, 5, 6, 7, 8] }]],
    ['a malformed cookie (3 octets): ignored like any cookie', [{ code: 10, data: [1, 2, 3] }]],
    ['padding', [{ code: 12, data: [0, 0, 0, 0] }]],
    ['EXPIRE', [{ code: 9, data: [] }]],
    ['the same unknown option twice', [{ code: 65001, data: [] }, { code: 65001, data: [9] }]],
  ])('%s: ignored and never echoed', async (_, options) => {
    const r = await udpAsk({ name: ZONE, type: SOA, opt: { options } });
    expect(r).toMatchObject({ rcode: 0, counts: { an: 1 } });
    expect(r.opt?.options).toEqual([]);
  });

  it('ECS beside unknown options: only ECS comes back', async () => {
    const r = await udpAsk({ name: 'api.gslb.example.com', opt: { options: [{ code: 100, data: [7] }, ecsOf('36.66.0.0/24'), { code: 10, data: [1, 2, 3, 4, 5, 6, 7, 8] }] } });
    expect(r.opt?.options.map((o) => o.code)).toEqual([8]);
  });

  it('EDNS version 1 with DO, unknown flags and ECS: BADVERS (16), the question, an OPT of version 0 with DO only and no options, no answer', async () => {
    const r = await udpAsk({ name: ZONE, type: SOA, opt: { version: 1, flags: 0xc080, options: [ecsOf('36.66.0.0/24')] } });
    expect(r).toMatchObject({ rcode: RCODE.BADVERS, aa: false, counts: { qd: 1, an: 0, ns: 0, ar: 1 } });
    expect(r.question).toEqual({ name: ZONE, type: SOA, qclass: 1 });
    expect(r.opt).toEqual({ size: 1232, version: 0, flags: 0x8000, options: [] });
  });

  it('EDNS version 1 with an unknown opcode: BADVERS wins (as Knot)', async () => {
    const r = await udpAsk({ flags: 5 << 11, name: ZONE, opt: { version: 1 } });
    expect(r).toMatchObject({ opcode: 5, rcode: RCODE.BADVERS, opt: { version: 0 } });
  });

  it.each([
    ['two OPT records', { opt: [{}, {}] }],
    ['an OPT owned by a name', { opt: { owner: [1, 97, 0] } }],
    ['options overrunning the RDATA', { opt: { rdlength: 6 }, tail: [0, 10, 0, 8, 1, 2] }],
    ['trailing octets after the OPT', { opt: {}, tail: [0] }],
  ] as [string, QuerySpec][])('a broken OPT (%s): FORMERR, the question, no OPT back', async (_, spec) => {
    const r = await udpAsk({ name: ZONE, type: SOA, ...spec });
    expect(r).toMatchObject({ rcode: RCODE.FORMERR, counts: { qd: 1, an: 0, ns: 0, ar: 0 } });
    expect(r.opt).toBeUndefined();
  });

  it('a malformed ECS option: FORMERR, with our OPT, without the option', async () => {
    const r = await udpAsk({ name: 'api.gslb.example.com', opt: { dnssecOk: true, options: [{ code: 8, data: [0, 3, 0, 0] }] } });
    expect(r).toMatchObject({ rcode: RCODE.FORMERR, counts: { qd: 1, an: 0, ns: 0, ar: 1 } });
    expect(r.opt).toEqual({ size: 1232, version: 0, flags: 0x8000, options: [] });
  });

  it('QTYPE OPT: FORMERR', async () => {
    expect((await udpAsk({ name: ZONE, type: OPT })).rcode).toBe(RCODE.FORMERR);
  });

  it('a payload size under 512 is taken as 512; the reply advertises ours', async () => {
    const r = await udpAsk({ name: 'bulk.gslb.example.com', type: 28, opt: { size: 100 } });
    expect(r).toMatchObject({ tc: true, counts: { an: 0, ar: 1 }, opt: { size: 1232 } });
  });
});

describe('EDNS TCP keepalive (RFC 7828), hand-built', () => {
  it('over TCP, a query with the option gets it back with the idle timeout in force (10 s: 100 units of 100 ms)', async () => {
    const r = await tcpQuery({ name: ZONE, type: SOA, opt: { options: [keepalive()] } });
    expect(r).toMatchObject({ rcode: 0, counts: { an: 1, ar: 1 } });
    expect(r.opt?.options).toEqual([{ code: 11, data: [0, 100] }]);
  });

  it('over TCP, a query without it gets none', async () => {
    const r = await tcpQuery({ name: ZONE, type: SOA, opt: {} });
    expect(r.opt?.options).toEqual([]);
  });

  it('over TCP beside ECS and unknown options: ECS and keepalive back, nothing else', async () => {
    const r = await tcpQuery({ name: 'api.gslb.example.com', opt: { options: [{ code: 100, data: [] }, keepalive(), ecsOf('36.66.0.0/24')] } });
    expect(r.opt?.options.map((o) => o.code)).toEqual([8, 11]);
  });

  it('over TCP, a refusal carries it too', async () => {
    const r = await tcpQuery({ name: 'example.org', opt: { options: [keepalive()] } });
    expect(r).toMatchObject({ rcode: RCODE.REFUSED, aa: false, opt: { options: [{ code: 11, data: [0, 100] }] } });
  });

  it('over TCP, a TIMEOUT in a query (a client must not send one): FORMERR, our OPT without options', async () => {
    const r = await tcpQuery({ name: ZONE, type: SOA, opt: { options: [keepalive(50)] } });
    expect(r).toMatchObject({ rcode: RCODE.FORMERR, counts: { qd: 1, an: 0, ns: 0, ar: 1 } });
    expect(r.opt?.options).toEqual([]);
  });

  it.each([
    ['empty', keepalive()],
    ['with a TIMEOUT', keepalive(50)],
  ])('over UDP the option (%s) is ignored, never sent, and not an error', async (_, option) => {
    const r = await udpAsk({ name: ZONE, type: SOA, opt: { options: [option] } });
    expect(r).toMatchObject({ rcode: 0, counts: { an: 1, ar: 1 } });
    expect(r.opt?.options).toEqual([]);
  });
});
