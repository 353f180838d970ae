// The writers every response shares: one Buffer per reply, the query's ID,
// flags and question copied, a pre-encoded body (zone.ts) appended, and our
// OPT record written in place. What a reply copies from its query is only
// what it must: the ID, the opcode, RD and CD, the question; and in the OPT
// the DO bit, the ECS option (with our scope) and, over TCP when asked, our
// keepalive TIMEOUT. Never AA/TC/Z/AD/RCODE bits the client set, the OPT's
// other flags or options we do not know.

import { DROP, FLAG_AA, FLAG_CD, FLAG_QR, FLAG_RD, FLAG_TC, HEADER_SIZE, OPTION_ECS, OPTION_KEEPALIVE, RCODE, TYPE, type Body, type Query } from './wire.js';

/** The keepalive option: code, length 2, TIMEOUT. */
const KEEPALIVE_SIZE = 6;

/** Size of our OPT record for this query: 11 octets, plus the echoed ECS option and our keepalive. */
function optSize(q: Query): number {
  return q.edns ? 11 + (q.ecs >= 0 ? 4 + q.ecsLength : 0) + (q.tcpTimeout >= 0 ? KEEPALIVE_SIZE : 0) : 0;
}

/**
 * The response to an answerable query: header, the question exactly as asked,
 * the body, and an OPT (with the ECS option echoed, SCOPE set) when the query
 * had one. A response over `limit` octets goes out empty with TC set.
 */
export function writeResponse(query: Buffer, q: Query, body: Body, scope: number, udpSize: number, limit: number): Buffer {
  const qEnd = q.questionEnd;
  const opt = optSize(q);
  let size = qEnd + body.bytes.length + opt;
  const truncated = size > limit;
  if (truncated) size = qEnd + opt;
  const out = Buffer.allocUnsafe(size);
  out[0] = query[0];
  out[1] = query[1];
  const flags = FLAG_QR | (body.aa ? FLAG_AA : 0) | (truncated ? FLAG_TC : 0) | (q.flags & (FLAG_RD | FLAG_CD)) | (body.rcode & 0xf);
  out[2] = flags >> 8;
  out[3] = flags & 0xff;
  out[4] = 0;
  out[5] = 1;
  if (truncated) {
    out.fill(0, 6, 10);
  } else {
    out[6] = body.an >> 8;
    out[7] = body.an & 0xff;
    out[8] = body.ns >> 8;
    out[9] = body.ns & 0xff;
  }
  const ar = (truncated ? 0 : body.ar) + (opt ? 1 : 0);
  out[10] = ar >> 8;
  out[11] = ar & 0xff;
  copy(query, HEADER_SIZE, qEnd, out, HEADER_SIZE);
  let p = qEnd;
  if (!truncated) p = copy(body.bytes, 0, body.bytes.length, out, p);
  if (opt) writeOpt(out, p, query, q, body.rcode, scope, udpSize);
  return out;
}

function writeOpt(out: Buffer, p: number, query: Buffer, q: Query, rcode: number, scope: number, udpSize: number): void {
  out[p] = 0; // root
  out[p + 1] = 0;
  out[p + 2] = TYPE.OPT;
  out[p + 3] = udpSize >> 8;
  out[p + 4] = udpSize & 0xff;
  out[p + 5] = rcode >> 4; // extended RCODE
  out[p + 6] = 0; // version
  // DO as asked; CO (RFC 9824) only beside DO, where a compact answer was possible.
  out[p + 7] = q.dnssecOk ? (q.compactOk ? 0xc0 : 0x80) : 0;
  out[p + 8] = 0;
  const rdlen = (q.ecs >= 0 ? 4 + q.ecsLength : 0) + (q.tcpTimeout >= 0 ? KEEPALIVE_SIZE : 0);
  out[p + 9] = rdlen >> 8;
  out[p + 10] = rdlen & 0xff;
  p += 11;
  if (q.ecs >= 0) {
    out[p] = 0;
    out[p + 1] = OPTION_ECS;
    out[p + 2] = q.ecsLength >> 8;
    out[p + 3] = q.ecsLength & 0xff;
    copy(query, q.ecs, q.ecs + q.ecsLength, out, p + 4);
    out[p + 4 + 3] = scope; // FAMILY, SOURCE PREFIX-LENGTH and ADDRESS as asked; our SCOPE
    p += 4 + q.ecsLength;
  }
  if (q.tcpTimeout >= 0) {
    out[p] = 0;
    out[p + 1] = OPTION_KEEPALIVE;
    out[p + 2] = 0;
    out[p + 3] = 2;
    out[p + 4] = q.tcpTimeout >> 8;
    out[p + 5] = q.tcpTimeout & 0xff;
  }
}

/**
 * An error response (FORMERR, NOTIMP, BADVERS, SERVFAIL, REFUSED): the header
 * (ID, opcode, RD, CD), the question when one was read (RFC 6895), an OPT
 * when the query had a readable one (always for BADVERS, whose high bits
 * travel in the OPT), without options for FORMERR and BADVERS (the query's
 * options were not understood). `undefined` for DROP.
 */
export function writeError(query: Buffer, q: Query, rcode: number, udpSize: number): Buffer | undefined {
  if (rcode === DROP || query.length < HEADER_SIZE) return undefined;
  const qEnd = q.questionEnd || HEADER_SIZE;
  const withOpt = q.edns || rcode > 0xf;
  const bare = rcode === RCODE.FORMERR || rcode === RCODE.BADVERS;
  const optq = withOpt ? { ...q, edns: true, ecs: bare ? -1 : q.ecs, tcpTimeout: bare ? -1 : q.tcpTimeout } : q;
  const opt = withOpt ? optSize(optq) : 0;
  const out = Buffer.allocUnsafe(qEnd + opt);
  out[0] = query[0];
  out[1] = query[1];
  const flags = FLAG_QR | (q.flags & (0x7800 | FLAG_RD | FLAG_CD)) | (rcode & 0xf);
  out[2] = flags >> 8;
  out[3] = flags & 0xff;
  out.fill(0, 4, 12);
  if (q.questionEnd) {
    out[5] = 1;
    query.copy(out, HEADER_SIZE, HEADER_SIZE, qEnd);
  }
  if (opt) {
    out[11] = 1;
    writeOpt(out, qEnd, query, optq, rcode, 0, udpSize);
  }
  return out;
}

// Buffer#copy's argument handling costs more than moving the few dozen octets
// of a question or an answer; long bodies still go native.
function copy(src: Buffer, start: number, end: number, dst: Buffer, at: number): number {
  if (end - start > 64) return at + src.copy(dst, at, start, end);
  for (let i = start; i < end; i++) dst[at++] = src[i];
  return at;
}
