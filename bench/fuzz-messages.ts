// What `npm run fuzz` sends: random and mutated DNS messages from a seeded
// generator (the same run every time for a seed), fast enough to make a
// million in a few seconds: queries built in structured broken ways, then
// mutated — bit flips, truncation, length fields that lie, compression loops,
// random opcodes and flags, random EDNS versions and options, huge counts —
// plus plain random octets and responses (QR=1). And the TCP streams' broken
// framing.
import { ecs, nameWire, query, type OptSpec } from '../src/dns/fixtures.js';
import { seededRandom } from '../src/steer/steer.js';

export type Random = () => number;
export { seededRandom };

const NAMES = [
  'api.gslb.example.com',
  'API.gslb.EXAMPLE.com',
  'gslb.example.com',
  'sg.api.gslb.example.com',
  'jkt.api.gslb.example.com',
  'ns1.gslb.example.com',
  'nope.gslb.example.com',
  'a.b.c.sg.api.gslb.example.com',
  'example.org',
  'com',
  '',
];
const TYPES = [1, 28, 1, 28, 2, 6, 255, 252, 251, 253, 254, 41, 16, 13, 0, 65535, 99, 64, 65];
const CLASSES = [1, 1, 1, 1, 1, 1, 0, 2, 3, 4, 254, 255, 65535];

const int = (r: Random, n: number) => Math.floor(r() * n);
const pick = <T>(r: Random, xs: readonly T[]): T => xs[int(r, xs.length)];
const octets = (r: Random, n: number) => Array.from({ length: n }, () => int(r, 256));

/** A question name: mostly the zone's, sometimes broken in the ways a reader must survive. */
function rawName(r: Random): number[] {
  const k = r();
  if (k < 0.75) return nameWire(pick(r, NAMES));
  if (k < 0.78) return [0xc0, 12]; // a pointer at itself
  if (k < 0.81) return [3, 97, 112, 105, 0xc0, 12]; // a loop back to the start of the name
  if (k < 0.84) return [3, 97, 112, 105, 0xc0 | int(r, 64), int(r, 256)]; // a pointer anywhere, forward included
  if (k < 0.87) return [64 + int(r, 192), 97, 98, 0]; // a label over 63, extended and reserved label types
  if (k < 0.9) return [...Array.from({ length: 4 + int(r, 3) }, () => [63, ...Buffer.alloc(63, 0x61)]).flat(), 0]; // over 255 octets
  if (k < 0.93) return nameWire(pick(r, NAMES)).slice(0, -1); // no root label
  return octets(r, int(r, 40));
}

function ednsOption(r: Random): { code: number; data: number[] } {
  const k = r();
  if (k < 0.4) {
    const source = pick(r, [24, 24, 16, 32, 0, 8]);
    return ecs(1, source, [36, 66, int(r, 256), int(r, 256)].slice(0, Math.ceil(source / 8)));
  }
  if (k < 0.5) return ecs(2, pick(r, [48, 56, 0, 128]), octets(r, int(r, 17)));
  if (k < 0.6) return ecs(int(r, 5), int(r, 256), octets(r, int(r, 20)), int(r, 256)); // any family, prefixes, address length
  if (k < 0.65) return { code: 8, data: octets(r, int(r, 4)) }; // too short for FAMILY/SOURCE/SCOPE
  if (k < 0.75) return { code: 10, data: octets(r, pick(r, [8, 16, 24, 40, 3])) }; // cookies, good and bad lengths
  if (k < 0.8) return { code: 11, data: octets(r, pick(r, [0, 2, 1])) }; // TCP keepalive (RFC 7828)
  if (k < 0.85) return { code: 12, data: octets(r, int(r, 64)) }; // padding
  return { code: int(r, 65536), data: octets(r, int(r, 30)) };
}

function opt(r: Random): OptSpec {
  return {
    size: pick(r, [0, 511, 512, 1232, 1232, 4096, 65535, int(r, 65536)]),
    version: r() < 0.85 ? 0 : pick(r, [1, 2, 255]),
    dnssecOk: r() < 0.3,
    owner: r() < 0.95 ? [0] : pick(r, [nameWire('x'), [0xc0, 12]]),
    options: Array.from({ length: pick(r, [0, 1, 1, 1, 2, 3]) }, () => ednsOption(r)),
    rdlength: r() < 0.05 ? int(r, 65536) : undefined, // a lying RDLENGTH
  };
}

/** A query built field by field, most fields right, some not. */
function structured(r: Random): Buffer {
  const rare = (common: number, other: () => number) => (r() < 0.9 ? common : other());
  // Every opcode now and then, odd flag combinations (AA, TC, RA, Z, AD, CD on a query), QR=1 one time in 20.
  const opcode = r() < 0.85 ? 0 : int(r, 16);
  const flags = (r() < 0.05 ? 0x8000 : 0) | (opcode << 11) | (r() < 0.7 ? 0x0100 : int(r, 0x800));
  const opts = r() < 0.8 ? [opt(r)] : r() < 0.5 ? [] : [opt(r), opt(r)];
  return query({
    id: int(r, 65536),
    flags,
    qdcount: rare(1, () => pick(r, [0, 2, 3, 65535])),
    ancount: rare(0, () => pick(r, [1, 2, 65535, int(r, 65536)])),
    nscount: rare(0, () => pick(r, [1, 65535, int(r, 65536)])),
    arcount: rare(opts.length, () => pick(r, [0, 5, 65535, int(r, 65536)])),
    rawName: rawName(r),
    type: pick(r, TYPES),
    qclass: pick(r, CLASSES),
    opt: opts,
    tail: r() < 0.05 ? octets(r, int(r, 16)) : [],
  });
}

/** A mutation of `m` (a copy): bit flips, truncation, overwritten octets, lying counts, pointers planted, garbage appended. */
function mutate(r: Random, m: Buffer): Buffer {
  const k = r();
  const at = () => int(r, m.length);
  if (k < 0.35) return m;
  if (k < 0.55) {
    for (let i = 1 + int(r, 8); i > 0; i--) m[at()] ^= 1 << int(r, 8);
    return m;
  }
  if (k < 0.65) return m.subarray(0, at());
  if (k < 0.72) {
    m[at()] = int(r, 256);
    return m;
  }
  if (k < 0.8) {
    if (m.length >= 12) m.writeUInt16BE(pick(r, [0xffff, 0x8000, int(r, 65536)]), 4 + 2 * int(r, 4)); // a huge count
    return m;
  }
  if (k < 0.87) {
    const p = Math.max(12, at());
    if (p + 1 < m.length) m.writeUInt16BE(0xc000 | int(r, 0x4000), p); // a compression pointer planted anywhere
    return m;
  }
  if (k < 0.92) {
    // A length field that lies: an OPT RDLENGTH or an option length near the end rewritten.
    const p = Math.max(12, m.length - 2 - int(r, Math.min(m.length - 11, 24)));
    if (p + 1 < m.length) m.writeUInt16BE(pick(r, [0xffff, m.length, int(r, 65536)]), p);
    return m;
  }
  if (k < 0.96) {
    m[2] = int(r, 256); // random opcode and flags
    m[3] = int(r, 256);
    return m;
  }
  return Buffer.concat([m, Buffer.from(octets(r, int(r, 64)))]);
}

/** The next fuzz message. */
export function message(r: Random): Buffer {
  const k = r();
  if (k < 0.9) return mutate(r, structured(r));
  if (k < 0.97) return Buffer.from(octets(r, int(r, k < 0.95 ? 64 : 700)));
  // A response: must never be answered (no reflection loops between servers).
  const m = structured(r);
  m[2] |= 0x80;
  return m;
}

/** Whether the server owes a reply: a whole header and QR=0. */
export const answerable = (m: Buffer) => m.length >= 12 && (m[2] & 0x80) === 0;

export const frame = (m: Buffer) => {
  const out = Buffer.allocUnsafe(m.length + 2);
  out.writeUInt16BE(m.length & 0xffff, 0);
  m.copy(out, 2);
  return out;
};

/** What a TCP stream may end with once its good frames are sent: broken framing of several kinds, or nothing. */
export function brokenTail(r: Random): { kind: string; bytes: Buffer } {
  const k = r();
  if (k < 0.2) return { kind: 'none', bytes: Buffer.alloc(0) };
  if (k < 0.35) return { kind: 'length past the end', bytes: Buffer.concat([Buffer.from([0x01, 0x00]), Buffer.from(octets(r, 20))]) };
  if (k < 0.45) return { kind: 'length 0xffff, a few octets', bytes: Buffer.from([0xff, 0xff, 1, 2, 3]) };
  if (k < 0.55) return { kind: 'zero-length frame', bytes: Buffer.from([0, 0, 0, 0]) };
  if (k < 0.65) return { kind: 'one-octet frame', bytes: Buffer.from([0, 1, 0x42]) };
  if (k < 0.75) return { kind: 'half a length prefix', bytes: Buffer.from([0x00]) };
  if (k < 0.85) return { kind: 'a runt frame', bytes: frame(Buffer.from(octets(r, 1 + int(r, 11)))) };
  if (k < 0.92) return { kind: 'a response frame', bytes: frame(Buffer.from([0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1])) };
  return { kind: 'random octets', bytes: Buffer.from(octets(r, 1 + int(r, 300))) };
}
