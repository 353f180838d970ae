import { Packet } from 'dns2';
import { describe, expect, it } from 'vitest';
import { decodeReply, ecs, ecsOf, keepalive, nameWire, query } from './fixtures.js';
import { formatAddress, maskAddress, parseAddress } from './address.js';
import { udpLimit } from './edns.js';
import { readQuery } from './query-reader.js';
import { writeError, writeResponse } from './response-writer.js';
import { DROP, KEEPALIVE, RCODE, type Query } from './wire.js';

const FORMERR = RCODE.FORMERR;

describe('readQuery: good queries', () => {
  const cases: { name: string; packet: Buffer; expect: Partial<Query> }[] = [
    {
      name: 'plain A query',
      packet: query({ name: 'api.gslb.example.com' }),
      expect: { rcode: 0, id: 0x1234, qtype: 1, qclass: 1, edns: false, udpSize: 512, ecs: -1, key: String.fromCharCode(...nameWire('api.gslb.example.com')) },
    },
    {
      name: 'mixed case is lowercased in the key only',
      packet: query({ name: 'ApI.GSLB.example.COM', type: 28 }),
      expect: { rcode: 0, qtype: 28, key: String.fromCharCode(...nameWire('api.gslb.example.com')) },
    },
    { name: 'the root name', packet: query({ rawName: [0], type: 2 }), expect: { rcode: 0, key: '\0', nameLength: 1 } },
    { name: 'OPT with a large payload size and DO', packet: query({ opt: { size: 4096, dnssecOk: true } }), expect: { rcode: 0, edns: true, udpSize: 4096, dnssecOk: true } },
    { name: 'OPT payload size below 512 counts as 512', packet: query({ opt: { size: 100 } }), expect: { rcode: 0, edns: true, udpSize: 512 } },
    { name: 'ECS IPv4 /24', packet: query({ opt: { options: [ecsOf('36.66.0.0/24')] } }), expect: { rcode: 0, ecsFamily: 1, ecsSourcePrefix: 24, ecsLength: 7 } },
    { name: 'ECS IPv4 /20 with zero padding bits', packet: query({ opt: { options: [ecs(1, 20, [36, 66, 0xf0])] } }), expect: { rcode: 0, ecsSourcePrefix: 20, ecsLength: 7 } },
    { name: 'ECS IPv6 /56', packet: query({ opt: { options: [ecsOf('2001:db8:1234:5600::/56')] } }), expect: { rcode: 0, ecsFamily: 2, ecsSourcePrefix: 56, ecsLength: 11 } },
    { name: 'ECS source prefix 0 carries no address', packet: query({ opt: { options: [ecs(1, 0, [])] } }), expect: { rcode: 0, ecsSourcePrefix: 0, ecsLength: 4 } },
    { name: 'ECS /32', packet: query({ opt: { options: [ecs(1, 32, [1, 2, 3, 4])] } }), expect: { rcode: 0, ecsSourcePrefix: 32, ecsLength: 8 } },
    { name: 'unknown options (cookie) are skipped', packet: query({ opt: { options: [{ code: 10, data: [1, 2, 3, 4, 5, 6, 7, 8] }, ecsOf('1.2.3.0/24')] } }), expect: { rcode: 0, ecsSourcePrefix: 24 } },
    { name: 'CD is kept in flags', packet: query({ flags: 0x0110 }), expect: { rcode: 0, flags: 0x0110 } },
    { name: 'the reserved Z bit, AA, TC, RA, AD and an RCODE in a query are not errors', packet: query({ flags: 0x07f5 }), expect: { rcode: 0 } },
    { name: 'keepalive asked (no data)', packet: query({ opt: { options: [keepalive()] } }), expect: { rcode: 0, edns: true, keepalive: KEEPALIVE.ASKED, tcpTimeout: -1 } },
    // Whether a client's TIMEOUT is an error depends on the transport (RFC 7828): the responder decides.
    { name: 'keepalive with a TIMEOUT', packet: query({ opt: { options: [keepalive(20)] } }), expect: { rcode: 0, keepalive: KEEPALIVE.WITH_TIMEOUT } },
    { name: 'no keepalive', packet: query({ opt: {} }), expect: { keepalive: KEEPALIVE.NONE } },
    {
      name: 'an answer record (compressed owner) is stepped over',
      packet: query({ ancount: 1, tail: [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4] }),
      expect: { rcode: 0 },
    },
    {
      name: 'a name of 255 octets, the most allowed',
      packet: query({ rawName: [...Array(3).fill([63, ...Array(63).fill(97)]).flat(), 61, ...Array(61).fill(98), 0] }),
      expect: { rcode: 0, nameLength: 255 },
    },
  ];
  it.each(cases)('$name', ({ packet, expect: want }) => {
    expect(readQuery(packet)).toMatchObject(want);
  });
});

describe('readQuery: malformed and unsupported', () => {
  const longLabel = (n: number) => [n, ...Array(n).fill(97)];
  const cases: { name: string; packet: Buffer; rcode: number }[] = [
    { name: 'empty message', packet: Buffer.alloc(0), rcode: DROP },
    { name: '11 octets', packet: query().subarray(0, 11), rcode: DROP },
    { name: 'a response (QR=1)', packet: query({ flags: 0x8100 }), rcode: DROP },
    { name: 'a header only', packet: query().subarray(0, 12), rcode: FORMERR },
    { name: 'opcode STATUS', packet: query({ flags: 2 << 11 }), rcode: RCODE.NOTIMP },
    { name: 'opcode UPDATE', packet: query({ flags: 5 << 11 }), rcode: RCODE.NOTIMP },
    { name: 'an unknown opcode, header only', packet: query({ flags: 15 << 11, qdcount: 0 }).subarray(0, 12), rcode: RCODE.NOTIMP },
    { name: 'an unknown opcode with a message that does not parse', packet: query({ flags: 15 << 11, tail: [1] }), rcode: FORMERR },
    { name: 'an unknown opcode with EDNS version 1', packet: query({ flags: 15 << 11, opt: { version: 1 } }), rcode: RCODE.BADVERS },
    { name: 'an unknown opcode with a bad ECS option', packet: query({ flags: 15 << 11, opt: { options: [ecs(3, 0, [])] } }), rcode: FORMERR },
    { name: 'qdcount 0, header only', packet: Buffer.from([0x12, 0x34, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]), rcode: FORMERR },
    { name: 'qdcount 0', packet: query({ qdcount: 0 }), rcode: FORMERR },
    { name: 'qdcount 2', packet: query({ qdcount: 2 }), rcode: FORMERR },
    { name: 'compression pointer in the question', packet: query({ rawName: [3, 97, 112, 105, 0xc0, 12] }), rcode: FORMERR },
    { name: 'extended label type 0x40', packet: query({ rawName: [0x41, 0] }), rcode: FORMERR },
    { name: 'label runs past the end', packet: Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 97, 98]), rcode: FORMERR },
    { name: 'name without its root label', packet: Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 97]), rcode: FORMERR },
    { name: 'no QTYPE/QCLASS', packet: query().subarray(0, 12 + 22), rcode: FORMERR },
    { name: 'half a QCLASS', packet: query().subarray(0, 12 + 22 + 3), rcode: FORMERR },
    { name: 'a name of 256 octets', packet: query({ rawName: [...Array(3).fill(longLabel(63)).flat(), ...longLabel(62), 0] }), rcode: FORMERR },
    { name: 'a name of 257 octets', packet: query({ rawName: [...Array(4).fill(longLabel(63)).flat(), 0] }), rcode: FORMERR },
    { name: 'trailing garbage', packet: query({ tail: [1, 2, 3] }), rcode: FORMERR },
    { name: 'arcount 1 with no record', packet: query({ arcount: 1 }), rcode: FORMERR },
    { name: 'ancount 1 with a truncated record', packet: query({ ancount: 1, tail: [0, 0, 1, 0, 1] }), rcode: FORMERR },
    { name: 'record RDLENGTH past the end', packet: query({ ancount: 1, tail: [0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 9, 1, 2] }), rcode: FORMERR },
    { name: 'OPT owned by a non-root name', packet: query({ opt: { owner: [1, 97, 0] } }), rcode: FORMERR },
    { name: 'two OPT records', packet: query({ opt: [{}, {}] }), rcode: FORMERR },
    { name: 'OPT RDLENGTH past the end', packet: query({ opt: { rdlength: 20 } }), rcode: FORMERR },
    { name: 'option header cut short', packet: query({ opt: { rdlength: 3 }, tail: [0, 8, 0] }), rcode: FORMERR },
    { name: 'option length past RDLENGTH', packet: query({ opt: { rdlength: 6 }, tail: [0, 10, 0, 8, 1, 2] }), rcode: FORMERR },
    { name: 'ECS option shorter than 4 octets', packet: query({ opt: { options: [{ code: 8, data: [0, 1, 0] }] } }), rcode: FORMERR },
    { name: 'ECS family 3', packet: query({ opt: { options: [ecs(3, 0, [])] } }), rcode: FORMERR },
    { name: 'ECS IPv4 source prefix 33', packet: query({ opt: { options: [ecs(1, 33, [1, 2, 3, 4, 5])] } }), rcode: FORMERR },
    { name: 'ECS IPv6 source prefix 129', packet: query({ opt: { options: [ecs(2, 129, Array(17).fill(0))] } }), rcode: FORMERR },
    { name: 'ECS address too long for its prefix', packet: query({ opt: { options: [ecs(1, 24, [36, 66, 0, 0])] } }), rcode: FORMERR },
    { name: 'ECS address too short for its prefix', packet: query({ opt: { options: [ecs(1, 24, [36, 66])] } }), rcode: FORMERR },
    { name: 'ECS bits set beyond the source prefix', packet: query({ opt: { options: [ecs(1, 20, [36, 66, 0x0f])] } }), rcode: FORMERR },
    { name: 'ECS /0 with an address octet', packet: query({ opt: { options: [ecs(1, 0, [1])] } }), rcode: FORMERR },
    { name: 'two ECS options', packet: query({ opt: { options: [ecsOf('1.2.3.0/24'), ecsOf('1.2.3.0/24')] } }), rcode: FORMERR },
    { name: 'EDNS version 1', packet: query({ opt: { version: 1 } }), rcode: RCODE.BADVERS },
    { name: 'EDNS version 1 with an option we cannot read', packet: query({ opt: { version: 1, options: [ecs(9, 0, [])] } }), rcode: RCODE.BADVERS },
    { name: 'QTYPE OPT', packet: query({ type: 41 }), rcode: FORMERR },
  ];
  it.each(cases)('$name → rcode $rcode', ({ packet, rcode }) => {
    expect(readQuery(packet).rcode).toBe(rcode);
  });

  // A message that does not parse gets no OPT back (as Knot); a readable OPT with a bad option, or a defect elsewhere, does.
  it.each([
    ['two OPT records', query({ opt: [{}, {}] }), false],
    ['options overrunning', query({ opt: { rdlength: 6 }, tail: [0, 10, 0, 8, 1, 2] }), false],
    ['trailing octets', query({ opt: {}, tail: [0] }), false],
    ['a bad ECS option', query({ opt: { options: [ecs(3, 0, [])] } }), true],
    ['a bad ECS option, then octets past the end', query({ opt: { options: [ecs(3, 0, [])] }, tail: [0] }), false],
    ['qdcount 0 with an OPT', Buffer.concat([Buffer.from([0x12, 0x34, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]), query({ opt: {} }).subarray(12 + 22 + 4)]), true],
    ['EDNS version 1', query({ opt: { version: 1 } }), true],
  ])('%s: FORMERR or BADVERS, the OPT echoed: %s', (_, packet, edns) => {
    const q = readQuery(packet);
    expect(q.rcode).not.toBe(0);
    expect(q.edns).toBe(edns);
  });
});

describe('writeError', () => {
  it('FORMERR echoes the id, opcode, RD and the question when there is one', () => {
    const packet = query({ id: 0xbeef, tail: [9] });
    const out = writeError(packet, readQuery(packet), FORMERR, 1232)!;
    const parsed = Packet.parse(out);
    expect(parsed.header).toMatchObject({ id: 0xbeef, qr: 1, rd: 1, aa: 0, ra: 0, rcode: FORMERR, qdcount: 1 });
    expect(parsed.questions[0]).toMatchObject({ name: 'api.gslb.example.com', type: 1 });
  });

  it('FORMERR without a readable question is a bare header', () => {
    const packet = query({ qdcount: 2 });
    const out = writeError(packet, readQuery(packet), FORMERR, 1232)!;
    expect(out.length).toBe(12);
    expect(Packet.parse(out).header).toMatchObject({ qr: 1, rcode: FORMERR, qdcount: 0 });
  });

  it('BADVERS carries its high bits in an OPT of version 0', () => {
    const packet = query({ opt: { version: 1 } });
    const out = writeError(packet, readQuery(packet), RCODE.BADVERS, 1232)!;
    const parsed = Packet.parse(out);
    expect(parsed.header.rcode).toBe(RCODE.BADVERS);
    expect(parsed.additionals[0]).toMatchObject({ type: 41, class: 1232, version: 0, extendedRcode: 1 });
  });

  it('FORMERR and BADVERS carry no option back (ECS, keepalive); NOTIMP and REFUSED do', () => {
    const packet = query({ opt: { options: [ecsOf('36.66.0.0/24'), keepalive()] } });
    const q = { ...readQuery(packet), tcpTimeout: 42 };
    const opts = (rcode: number) => decodeReply(writeError(packet, q, rcode, 1232)!).opt!.options.map((o) => o.code);
    expect(opts(FORMERR)).toEqual([]);
    expect(opts(RCODE.BADVERS)).toEqual([]);
    expect(opts(RCODE.NOTIMP)).toEqual([8, 11]);
    expect(opts(RCODE.REFUSED)).toEqual([8, 11]);
  });

  it('drops what gets no reply', () => {
    const packet = query({ flags: 0x8000 });
    expect(writeError(packet, readQuery(packet), DROP, 1232)).toBeUndefined();
  });
});

describe('writeResponse', () => {
  const body = { bytes: Buffer.alloc(600, 0), an: 1, ns: 0, ar: 0, rcode: 0, aa: true };

  it('sets TC and leaves out every record that does not fit, keeping the OPT', () => {
    const packet = query({ opt: { size: 512, options: [ecsOf('36.66.0.0/24')] } });
    const q = readQuery(packet);
    const out = writeResponse(packet, q, body, 11, 1232, udpLimit(q, 1232));
    const parsed = Packet.parse(out);
    expect(parsed.header).toMatchObject({ tc: 1, aa: 1, ancount: 0, arcount: 1 });
    expect(parsed.additionals[0].rdata).toEqual([{ ednsCode: 8, family: 1, sourcePrefixLength: 24, scopePrefixLength: 11, ip: '36.66.0.0' }]);
  });

  it('udpLimit: 512 without EDNS, the client size up to ours with it', () => {
    expect(udpLimit(readQuery(query()), 1232)).toBe(512);
    expect(udpLimit(readQuery(query({ opt: { size: 4096 } })), 1232)).toBe(1232);
    expect(udpLimit(readQuery(query({ opt: { size: 800 } })), 1232)).toBe(800);
    expect(udpLimit(readQuery(query({ opt: { size: 0 } })), 1232)).toBe(512);
  });
});

describe('addresses', () => {
  it.each([
    ['192.0.2.1', '192.0.2.1'],
    ['2001:db8::1', '2001:db8::1'],
    ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::', '::'],
    ['::1', '::1'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ])('%s → %s', (text, canonical) => {
    expect(formatAddress(parseAddress(text)!)).toBe(canonical);
  });
  it.each(['1.2.3', '1.2.3.256', '1::2::3', '1:2:3:4:5:6:7:8:9', 'x::1', ''])('rejects %j', (text) => {
    expect(parseAddress(text)).toBeUndefined();
  });
  it('masks to a prefix', () => {
    expect(formatAddress(maskAddress(parseAddress('36.66.77.88')!, 11))).toBe('36.64.0.0');
    expect(formatAddress(maskAddress(parseAddress('2001:db8:abcd::1')!, 36))).toBe('2001:db8:a000::');
    expect(formatAddress(maskAddress(parseAddress('1.2.3.4')!, 32))).toBe('1.2.3.4');
    expect(formatAddress(maskAddress(parseAddress('1.2.3.4')!, 0))).toBe('0.0.0.0');
  });
});
