// An RFC 2136 UPDATE message read from its bytes: the header, the zone
// section, prerequisites, updates and the additional section (where TSIG is
// last), each RR with the offset it starts at (TSIG's MAC covers the bytes
// before it). RDATA of the record types Arus stores are read back into their
// presentation text (config/record-values.ts parses that text again).

import { labelsWire } from '../dnssec/names.js';

export const OPCODE_UPDATE = 5;
export const CLASS = { IN: 1, NONE: 254, ANY: 255 } as const;
export const T = { A: 1, NS: 2, CNAME: 5, SOA: 6, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, TSIG: 250, ANY: 255, CAA: 257 } as const;

export type Rr = {
  /** Absolute, lowercase, no final dot ('' for the root). */
  readonly name: string;
  readonly type: number;
  readonly class: number;
  readonly ttl: number;
  readonly rdata: Buffer;
  /** Where the RR's RDATA starts in the message (names in RDATA may point before it). */
  readonly rdataAt: number;
  /** Where the RR starts in the message. */
  readonly start: number;
};

export type UpdateMessage = {
  readonly id: number;
  readonly opcode: number;
  readonly zone: readonly { name: string; type: number; class: number }[];
  readonly prereq: readonly Rr[];
  readonly updates: readonly Rr[];
  readonly additional: readonly Rr[];
  /** The bytes of the zone section (echoed in the response). */
  readonly zoneBytes: Buffer;
};

/** A message that cannot be read: answered FORMERR when its header can be, else dropped. */
export class FormatError extends Error {}

/** A name at `at`, following compression pointers (never forwards loops: at most 127 jumps). */
export function readName(msg: Buffer, at: number): { name: string; end: number } {
  const labels: string[] = [];
  let pos = at;
  let end = -1;
  let octets = 1;
  for (let jumps = 0; ; ) {
    if (pos >= msg.length) throw new FormatError('name runs past the message');
    const len = msg[pos];
    if (len === 0) {
      if (end < 0) end = pos + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= msg.length || ++jumps > 127) throw new FormatError('bad compression pointer');
      if (end < 0) end = pos + 2;
      pos = ((len & 0x3f) << 8) | msg[pos + 1];
      continue;
    }
    if (len > 63 || pos + 1 + len > msg.length) throw new FormatError('bad label');
    octets += len + 1;
    if (octets > 255) throw new FormatError('name longer than 255 octets');
    labels.push(msg.toString('latin1', pos + 1, pos + 1 + len).toLowerCase());
    pos += 1 + len;
  }
  return { name: labels.join('.'), end };
}

function readRr(msg: Buffer, at: number): { rr: Rr; end: number } {
  const { name, end } = readName(msg, at);
  if (end + 10 > msg.length) throw new FormatError('RR header runs past the message');
  const rdlength = msg.readUInt16BE(end + 8);
  const rdataAt = end + 10;
  if (rdataAt + rdlength > msg.length) throw new FormatError('RDATA runs past the message');
  const rr = { name, type: msg.readUInt16BE(end), class: msg.readUInt16BE(end + 2), ttl: msg.readUInt32BE(end + 4), rdata: msg.subarray(rdataAt, rdataAt + rdlength), rdataAt, start: at };
  return { rr, end: rdataAt + rdlength };
}

/** Reads an UPDATE (or any) message; throws FormatError when it is not one. */
export function parseMessage(msg: Buffer): UpdateMessage {
  if (msg.length < 12) throw new FormatError('shorter than a header');
  const id = msg.readUInt16BE(0);
  const opcode = (msg[2] >> 3) & 0xf;
  const counts = [4, 6, 8, 10].map((o) => msg.readUInt16BE(o));
  let pos = 12;
  const zone = [];
  for (let i = 0; i < counts[0]; i++) {
    const n = readName(msg, pos);
    if (n.end + 4 > msg.length) throw new FormatError('zone section runs past the message');
    zone.push({ name: n.name, type: msg.readUInt16BE(n.end), class: msg.readUInt16BE(n.end + 2) });
    pos = n.end + 4;
  }
  const zoneBytes = msg.subarray(12, pos);
  const sections: Rr[][] = [[], [], []];
  for (let s = 0; s < 3; s++)
    for (let i = 0; i < counts[s + 1]; i++) {
      const r = readRr(msg, pos);
      sections[s].push(r.rr);
      pos = r.end;
    }
  if (pos !== msg.length) throw new FormatError('bytes after the last RR');
  return { id, opcode, zone, prereq: sections[0], updates: sections[1], additional: sections[2], zoneBytes };
}

/** A name as readName gives it (labels joined by dots, no escapes) in wire format, uncompressed, lowercase (TSIG's canonical form, DNSSEC's). */
export function wireName(name: string): Buffer {
  return labelsWire(name.split('.').filter(Boolean).map((l) => Buffer.from(l, 'latin1')));
}

const quoteCaa = (v: string) => `"${v}"`;

/**
 * The RDATA of an RR of a type Arus stores, as the presentation text records:
 * take (`10 mail.example.com.`); undefined for another type or RDATA that does not read.
 */
export function rdataText(msg: Buffer, rr: Rr): string | undefined {
  const d = rr.rdata;
  try {
    switch (rr.type) {
      case T.A:
        return d.length === 4 ? [...d].join('.') : undefined;
      case T.AAAA:
        return d.length === 16 ? Array.from({ length: 8 }, (_, i) => d.readUInt16BE(i * 2).toString(16)).join(':') : undefined;
      case T.CNAME: {
        const n = readName(msg, rr.rdataAt);
        return n.end === rr.rdataAt + d.length ? `${n.name}.` : undefined;
      }
      case T.MX: {
        const n = readName(msg, rr.rdataAt + 2);
        return d.length >= 3 && n.end === rr.rdataAt + d.length ? `${d.readUInt16BE(0)} ${n.name || ''}.` : undefined;
      }
      case T.SRV: {
        const n = readName(msg, rr.rdataAt + 6);
        return d.length >= 7 && n.end === rr.rdataAt + d.length ? `${d.readUInt16BE(0)} ${d.readUInt16BE(2)} ${d.readUInt16BE(4)} ${n.name || ''}.` : undefined;
      }
      case T.TXT:
        return txtText(d);
      case T.CAA: {
        if (d.length < 2 || d.length < 2 + d[1]) return undefined;
        return `${d[0]} ${d.toString('latin1', 2, 2 + d[1])} ${quoteCaa(d.toString('latin1', 2 + d[1]))}`;
      }
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** TXT's character-strings joined: a stored value is split into strings of 255 again when served. */
function txtText(d: Buffer): string | undefined {
  const parts: Buffer[] = [];
  for (let i = 0; i < d.length; ) {
    const len = d[i];
    if (i + 1 + len > d.length) return undefined;
    parts.push(d.subarray(i + 1, i + 1 + len));
    i += 1 + len;
  }
  if (parts.length === 0) return undefined;
  return Buffer.concat(parts).toString('utf8');
}

/** An UPDATE message from its parts (names uncompressed): what a client sends, for tests and tools. */
export function encodeUpdate(o: { id: number; zone: string; prereq?: EncodedRr[]; updates?: EncodedRr[] }): Buffer {
  const rr = (r: EncodedRr) => {
    const h = Buffer.alloc(10);
    h.writeUInt16BE(r.type, 0);
    h.writeUInt16BE(r.class, 2);
    h.writeUInt32BE(r.ttl, 4);
    h.writeUInt16BE(r.rdata.length, 8);
    return Buffer.concat([wireName(r.name), h, r.rdata]);
  };
  const head = Buffer.alloc(12);
  head.writeUInt16BE(o.id, 0);
  head.writeUInt16BE(OPCODE_UPDATE << 11, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(o.prereq?.length ?? 0, 6);
  head.writeUInt16BE(o.updates?.length ?? 0, 8);
  return Buffer.concat([head, wireName(o.zone), Buffer.from([0, T.SOA, 0, CLASS.IN]), ...(o.prereq ?? []).map(rr), ...(o.updates ?? []).map(rr)]);
}

export type EncodedRr = { name: string; type: number; class: number; ttl: number; rdata: Buffer };

/** TXT RDATA of one value (strings of 255). */
export const txtRdata = (text: string) => {
  const b = Buffer.from(text, 'utf8');
  const parts: Buffer[] = [];
  for (let i = 0; i === 0 || i < b.length; i += 255) parts.push(Buffer.concat([Buffer.from([Math.min(255, b.length - i)]), b.subarray(i, i + 255)]));
  return Buffer.concat(parts);
};
