// A strict reader for the parts of a query an authoritative server needs: the
// header, one question, and the additional section (its OPT record is read by
// edns.ts). Bounds-checked, synchronous, and it never throws: every defect
// comes back as the rcode to answer with, or DROP.
//
// Which defect wins, as Knot orders them: a message that does not parse
// (FORMERR, no OPT back), then an EDNS version above 0 (BADVERS), then a bad
// ECS option (FORMERR, OPT back), then an opcode other than QUERY (NOTIMP,
// whatever the question count), then a QUERY without exactly one question or
// for QTYPE OPT (FORMERR). Header bits a query should not set (AA, TC, RA, Z,
// AD, an RCODE) are ignored; an answer or authority section is stepped over.

import { readOpt } from './edns.js';
import { CLASSIC_UDP_SIZE, DROP, FLAG_QR, HEADER_SIZE, KEEPALIVE, OPCODE_QUERY, RCODE, TYPE, type Query } from './wire.js';

const MAX_NAME = 255;

// One scratch buffer for lowercasing names: the reader is synchronous.
const lower = Buffer.allocUnsafe(MAX_NAME);

function fail(q: Query, rcode: number): Query {
  q.rcode = rcode;
  return q;
}

/**
 * Reads a query. Never throws: a message too short for a header or with QR set
 * comes back as DROP; anything else malformed as FORMERR, an unknown opcode as
 * NOTIMP, an EDNS version above 0 as BADVERS.
 */
export function readQuery(buf: Buffer): Query {
  const len = buf.length;
  const q: Query = {
    rcode: DROP,
    id: 0,
    flags: 0,
    questionEnd: 0,
    nameLength: 0,
    key: '',
    qtype: 0,
    qclass: 0,
    edns: false,
    udpSize: CLASSIC_UDP_SIZE,
    dnssecOk: false,
    compactOk: false,
    ecs: -1,
    ecsLength: 0,
    ecsFamily: 0,
    ecsSourcePrefix: 0,
    keepalive: KEEPALIVE.NONE,
    tcpTimeout: -1,
  };
  if (len < HEADER_SIZE) return q;
  const flags = (buf[2] << 8) | buf[3];
  if (flags & FLAG_QR) return q;
  q.id = (buf[0] << 8) | buf[1];
  q.flags = flags;
  const qdcount = (buf[4] << 8) | buf[5];
  // More than one question cannot be answered, nor echoed (RFC 9619): the message is not read further.
  if (qdcount > 1) return fail(q, RCODE.FORMERR);
  const ancount = (buf[6] << 8) | buf[7];
  const nscount = (buf[8] << 8) | buf[9];
  const arcount = (buf[10] << 8) | buf[11];

  let p = HEADER_SIZE;
  if (qdcount === 1) {
    p = readQuestion(buf, q);
    if (p < 0) return fail(q, RCODE.FORMERR);
  }
  // Answer and authority sections are not expected in a query, but are legal: step over them.
  for (let i = 0; i < ancount + nscount; i++) {
    p = skipRecord(buf, p);
    if (p < 0) return fail(q, RCODE.FORMERR);
  }
  const rcode = readAdditional(buf, p, arcount, q);
  if (rcode !== RCODE.NOERROR) return fail(q, rcode);
  if (((flags >> 11) & 0xf) !== OPCODE_QUERY) return fail(q, RCODE.NOTIMP);
  if (qdcount === 0 || q.qtype === TYPE.OPT) return fail(q, RCODE.FORMERR);
  q.rcode = RCODE.NOERROR;
  return q;
}

/** Reads QNAME, QTYPE and QCLASS into `q`; the offset after the question, or -1 when it is malformed. */
function readQuestion(buf: Buffer, q: Query): number {
  const len = buf.length;
  // QNAME: uncompressed labels only (nothing precedes the question to point at).
  let p = HEADER_SIZE;
  for (;;) {
    if (p >= len) return -1;
    const l = buf[p];
    if (l === 0) break;
    if (l > 63) return -1; // pointer or reserved label type
    if (p + 1 + l - HEADER_SIZE >= MAX_NAME) return -1;
    lower[p - HEADER_SIZE] = l;
    for (let i = p + 1, end = p + 1 + l; i < end; i++) {
      if (i >= len) return -1;
      const c = buf[i];
      lower[i - HEADER_SIZE] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
    p += 1 + l;
  }
  lower[p - HEADER_SIZE] = 0;
  p += 1;
  if (p + 4 > len) return -1;
  q.nameLength = p - HEADER_SIZE;
  q.key = lower.toString('latin1', 0, q.nameLength);
  q.qtype = (buf[p] << 8) | buf[p + 1];
  q.qclass = (buf[p + 2] << 8) | buf[p + 3];
  p += 4;
  q.questionEnd = p;
  return p;
}

/**
 * Reads the additional section from `p` to the end of the message: FORMERR for
 * a record running past the end, a second OPT, an OPT not owned by the root,
 * options that overrun or trailing octets (`q.edns` cleared: no OPT back);
 * then BADVERS for an EDNS version above 0; then FORMERR for a bad ECS option.
 */
function readAdditional(buf: Buffer, p: number, arcount: number, q: Query): number {
  const len = buf.length;
  let opts = 0;
  let optRcode: number = RCODE.NOERROR;
  for (let i = 0; i < arcount; i++) {
    const start = p;
    p = skipName(buf, p);
    if (p < 0 || p + 10 > len) return broken(q);
    const type = (buf[p] << 8) | buf[p + 1];
    const rdlength = (buf[p + 8] << 8) | buf[p + 9];
    const end = p + 10 + rdlength;
    if (end > len) return broken(q);
    if (type === TYPE.OPT) {
      // RFC 6891 §6.1.1: one OPT, owned by the root.
      if (++opts > 1 || p !== start + 1) return broken(q);
      optRcode = readOpt(buf, p, end, q);
      if (!q.edns) return RCODE.FORMERR;
    }
    p = end;
  }
  if (p !== len) return broken(q); // trailing garbage
  return optRcode;
}

/** A message that does not parse: FORMERR, and no OPT in the reply whatever the query's OPT said. */
function broken(q: Query): number {
  q.edns = false;
  return RCODE.FORMERR;
}

/** Offset after a (possibly compressed) name, or -1. */
function skipName(buf: Buffer, p: number): number {
  const len = buf.length;
  let total = 0;
  for (;;) {
    if (p >= len) return -1;
    const l = buf[p];
    if (l === 0) return p + 1;
    if ((l & 0xc0) === 0xc0) return p + 2 <= len ? p + 2 : -1;
    if (l > 63) return -1;
    total += l + 1;
    if (total >= MAX_NAME) return -1;
    p += l + 1;
  }
}

function skipRecord(buf: Buffer, p: number): number {
  p = skipName(buf, p);
  if (p < 0 || p + 10 > buf.length) return -1;
  const end = p + 10 + ((buf[p + 8] << 8) | buf[p + 9]);
  return end <= buf.length ? end : -1;
}
