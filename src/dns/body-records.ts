// The records of a pre-encoded body (zone.ts) read back, and written out
// again: for what needs the records themselves rather than the bytes — the
// signed twin of an answer (signed-answers.ts: RRSIGs cover names
// uncompressed and lowercased) and a zone transfer (update/query.ts: records
// that point into no other message).
import { nameText } from '../dnssec/names.js';
import type { Rr } from '../dnssec/sign.js';
import { CLASS_IN, HEADER_SIZE, TYPE, type Body } from './wire.js';

/** A record as read back: owner (presentation and canonical wire form), type, TTL and canonical RDATA. */
export type BodyRecord = Rr & { readonly owner: Buffer };

/** Types whose RDATA holds names (RFC 4034 §6.2), as offsets: fixed octets before each name, and after. */
const NAMES_IN: Readonly<Partial<Record<number, { before: number; names: number; after: number }>>> = {
  [TYPE.NS]: { before: 0, names: 1, after: 0 },
  [TYPE.CNAME]: { before: 0, names: 1, after: 0 },
  12: { before: 0, names: 1, after: 0 }, // PTR
  39: { before: 0, names: 1, after: 0 }, // DNAME
  [TYPE.SOA]: { before: 0, names: 2, after: 20 },
  [TYPE.MX]: { before: 2, names: 1, after: 0 },
  [TYPE.SRV]: { before: 6, names: 1, after: 0 },
};

/**
 * The records of a body, laid after a question for `key` (wire form) as
 * zone.ts encodes them: names decompressed, lowercased, as RRSIGs cover them.
 */
export function readBody(body: Body, key: string): { an: BodyRecord[]; ns: BodyRecord[]; ar: BodyRecord[] } {
  const msg = Buffer.alloc(HEADER_SIZE + key.length + 4 + body.bytes.length);
  msg.write(key, HEADER_SIZE, 'latin1');
  body.bytes.copy(msg, HEADER_SIZE + key.length + 4);
  let p = HEADER_SIZE + key.length + 4;
  const read = (n: number) => {
    const out: BodyRecord[] = [];
    for (let i = 0; i < n; i++) {
      const owner = readName(msg, p);
      p = owner.end;
      if (p + 10 > msg.length) throw new Error('a record runs past the body');
      const type = msg.readUInt16BE(p);
      const ttl = msg.readUInt32BE(p + 4);
      const len = msg.readUInt16BE(p + 8);
      const start = p + 10;
      p = start + len;
      if (p > msg.length) throw new Error('RDATA runs past the body');
      out.push({ name: nameText(owner.wire), owner: owner.wire, type, ttl, rdata: canonicalRdata(msg, type, start, p) });
    }
    return out;
  };
  const an = read(body.an);
  const ns = read(body.ns);
  const ar = read(body.ar);
  return { an, ns, ar };
}

function canonicalRdata(msg: Buffer, type: number, start: number, end: number): Buffer {
  const shape = NAMES_IN[type];
  if (!shape) return Buffer.from(msg.subarray(start, end));
  const parts = [msg.subarray(start, start + shape.before)];
  let p = start + shape.before;
  for (let i = 0; i < shape.names; i++) {
    const n = readName(msg, p);
    parts.push(n.wire);
    p = n.end;
  }
  parts.push(msg.subarray(p, p + shape.after));
  return Buffer.concat(parts);
}

/** A possibly compressed name at `p`: its canonical (lowercase, uncompressed) wire form and the offset after it. */
function readName(msg: Buffer, p: number): { wire: Buffer; end: number } {
  const octets: number[] = [];
  let end = -1;
  for (let jumps = 0; ; ) {
    const len = msg[p];
    if (len === undefined) throw new Error('a name runs past the message');
    if ((len & 0xc0) === 0xc0) {
      if (end < 0) end = p + 2;
      if (p + 1 >= msg.length || ++jumps > 64) throw new Error('a bad compression pointer');
      p = ((len & 0x3f) << 8) | msg[p + 1];
      continue;
    }
    octets.push(len);
    if (len === 0) break;
    if (len > 63 || p + 1 + len > msg.length || octets.length + len > 255) throw new Error('a bad label');
    for (let i = p + 1; i <= p + len; i++) {
      const c = msg[i];
      octets.push(c >= 0x41 && c <= 0x5a ? c | 0x20 : c);
    }
    p += len + 1;
  }
  return { wire: Buffer.from(octets), end: end < 0 ? p + 1 : end };
}

/** A record's octets: `owner` (a pointer, say) or its own owner uncompressed, then type, class IN, TTL and RDATA. */
export function recordBytes(r: BodyRecord, owner: Buffer = r.owner): Buffer {
  const out = Buffer.allocUnsafe(owner.length + 10 + r.rdata.length);
  owner.copy(out, 0);
  let p = owner.length;
  out.writeUInt16BE(r.type, p);
  out.writeUInt16BE(CLASS_IN, p + 2);
  out.writeUInt32BE(r.ttl >>> 0, p + 4);
  out.writeUInt16BE(r.rdata.length, p + 8);
  p += 10;
  r.rdata.copy(out, p);
  return out;
}
