// The hot path's DNS wire format: a strict reader for the parts of a query an
// authoritative server needs (header, one question, OPT with ECS) and the few
// writers every response shares. Everything else is encoded ahead of time with
// dns2 (see templates.ts); nothing here allocates more than the query object,
// the lowercased name and the response buffer.

export const TYPE = { A: 1, NS: 2, SOA: 6, HINFO: 13, TXT: 16, AAAA: 28, OPT: 41, IXFR: 251, AXFR: 252, MAILB: 253, MAILA: 254, ANY: 255 } as const;
export const CLASS_IN = 1;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
/** `rcode` of a message that gets no reply at all. */
export const DROP = -1;
export const OPTION_ECS = 8;

export const HEADER_SIZE = 12;
const MAX_NAME = 255;
/** RFC 1035 §4.2.1: the UDP limit without EDNS, and the least an EDNS client may ask for. */
export const CLASSIC_UDP_SIZE = 512;

const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_CD = 0x0010;

/** What the reader found in a query; `rcode` says whether to answer it, refuse it or drop it. */
export type Query = {
  /** 0 when the query is answerable, an error rcode (FORMERR, NOTIMP, BADVERS) or DROP. */
  rcode: number;
  id: number;
  /** The query's flags word, as received. */
  flags: number;
  /** End of the question section; 0 when there is no question to echo. */
  questionEnd: number;
  /** Wire length of QNAME (including the root label). */
  nameLength: number;
  /** QNAME in wire format with ASCII letters lowercased (latin1): the lookup key. */
  key: string;
  qtype: number;
  qclass: number;
  /** The query carried a usable OPT record: the reply carries one too. */
  edns: boolean;
  /** Requestor's UDP payload size (OPT CLASS), at least 512. */
  udpSize: number;
  /** DNSSEC OK bit, copied to the reply's OPT (RFC 3225 §3). */
  dnssecOk: boolean;
  /** Offset of the ECS option's data (FAMILY) in the query, or -1. */
  ecs: number;
  /** Length of the ECS option's data (4 + address octets). */
  ecsLength: number;
  /** 1 = IPv4, 2 = IPv6. */
  ecsFamily: number;
  ecsSourcePrefix: number;
};

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
    ecs: -1,
    ecsLength: 0,
    ecsFamily: 0,
    ecsSourcePrefix: 0,
  };
  if (len < HEADER_SIZE) return q;
  const flags = (buf[2] << 8) | buf[3];
  if (flags & FLAG_QR) return q;
  q.id = (buf[0] << 8) | buf[1];
  q.flags = flags;
  if (((flags >> 11) & 0xf) !== 0) return fail(q, RCODE.NOTIMP);
  if (((buf[4] << 8) | buf[5]) !== 1) return fail(q, RCODE.FORMERR);
  const ancount = (buf[6] << 8) | buf[7];
  const nscount = (buf[8] << 8) | buf[9];
  const arcount = (buf[10] << 8) | buf[11];

  // QNAME: uncompressed labels only (nothing precedes the question to point at).
  let p = HEADER_SIZE;
  for (;;) {
    if (p >= len) return fail(q, RCODE.FORMERR);
    const l = buf[p];
    if (l === 0) break;
    if (l > 63) return fail(q, RCODE.FORMERR); // pointer or reserved label type
    if (p + 1 + l - HEADER_SIZE >= MAX_NAME) return fail(q, RCODE.FORMERR);
    lower[p - HEADER_SIZE] = l;
    for (let i = p + 1, end = p + 1 + l; i < end; i++) {
      if (i >= len) return fail(q, RCODE.FORMERR);
      const c = buf[i];
      lower[i - HEADER_SIZE] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
    p += 1 + l;
  }
  lower[p - HEADER_SIZE] = 0;
  p += 1;
  if (p + 4 > len) return fail(q, RCODE.FORMERR);
  q.nameLength = p - HEADER_SIZE;
  q.key = lower.toString('latin1', 0, q.nameLength);
  q.qtype = (buf[p] << 8) | buf[p + 1];
  q.qclass = (buf[p + 2] << 8) | buf[p + 3];
  p += 4;
  q.questionEnd = p;

  // Answer and authority sections are not expected in a query, but are legal: step over them.
  for (let i = 0; i < ancount + nscount; i++) {
    p = skipRecord(buf, p);
    if (p < 0) return fail(q, RCODE.FORMERR);
  }
  let opts = 0;
  let badVersion = false;
  for (let i = 0; i < arcount; i++) {
    const start = p;
    p = skipName(buf, p);
    if (p < 0 || p + 10 > len) return fail(q, RCODE.FORMERR);
    const type = (buf[p] << 8) | buf[p + 1];
    const rdlength = (buf[p + 8] << 8) | buf[p + 9];
    const rdata = p + 10;
    const end = rdata + rdlength;
    if (end > len) return fail(q, RCODE.FORMERR);
    if (type === TYPE.OPT) {
      // RFC 6891 §6.1.1: one OPT, owned by the root.
      if (++opts > 1 || p !== start + 1) return fail(q, RCODE.FORMERR);
      const size = (buf[p + 2] << 8) | buf[p + 3];
      q.udpSize = size < CLASSIC_UDP_SIZE ? CLASSIC_UDP_SIZE : size;
      q.dnssecOk = (buf[p + 6] & 0x80) !== 0;
      q.edns = true;
      if (buf[p + 5] !== 0) badVersion = true;
      else if (!readOptions(buf, rdata, end, q)) return fail(q, RCODE.FORMERR);
    }
    p = end;
  }
  if (p !== len) return fail(q, RCODE.FORMERR); // trailing garbage
  if (badVersion) return fail(q, RCODE.BADVERS);
  if (q.qtype === TYPE.OPT) return fail(q, RCODE.FORMERR);
  q.rcode = RCODE.NOERROR;
  return q;
}

// EDNS options; the only one we read is ECS (RFC 7871 §6), and only one of it.
function readOptions(buf: Buffer, p: number, end: number, q: Query): boolean {
  while (p < end) {
    if (p + 4 > end) return false;
    const code = (buf[p] << 8) | buf[p + 1];
    const optlen = (buf[p + 2] << 8) | buf[p + 3];
    const data = p + 4;
    if (data + optlen > end) return false;
    if (code === OPTION_ECS) {
      if (q.ecs >= 0 || optlen < 4) return false;
      const family = (buf[data] << 8) | buf[data + 1];
      const source = buf[data + 2];
      const max = family === 1 ? 32 : family === 2 ? 128 : -1;
      if (max < 0 || source > max) return false;
      const octets = (source + 7) >> 3;
      if (optlen !== 4 + octets) return false;
      // Bits beyond SOURCE PREFIX-LENGTH must be zero.
      if (source & 7 && buf[data + 4 + octets - 1] & (0xff >> (source & 7))) return false;
      q.ecs = data;
      q.ecsLength = optlen;
      q.ecsFamily = family;
      q.ecsSourcePrefix = source;
    }
    p = data + optlen;
  }
  return true;
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

/** A pre-encoded response body: the records after the question, and their counts. */
export type Body = {
  readonly bytes: Buffer;
  readonly an: number;
  readonly ns: number;
  readonly ar: number;
  readonly rcode: number;
  readonly aa: boolean;
};

/** Size of our OPT record for this query: 11 octets, plus the echoed ECS option. */
function optSize(q: Query): number {
  return q.edns ? 11 + (q.ecs >= 0 ? 4 + q.ecsLength : 0) : 0;
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
  out[p + 7] = q.dnssecOk ? 0x80 : 0;
  out[p + 8] = 0;
  const rdlen = q.ecs >= 0 ? 4 + q.ecsLength : 0;
  out[p + 9] = rdlen >> 8;
  out[p + 10] = rdlen & 0xff;
  if (rdlen) {
    p += 11;
    out[p] = 0;
    out[p + 1] = OPTION_ECS;
    out[p + 2] = q.ecsLength >> 8;
    out[p + 3] = q.ecsLength & 0xff;
    copy(query, q.ecs, q.ecs + q.ecsLength, out, p + 4);
    out[p + 4 + 3] = scope; // FAMILY, SOURCE PREFIX-LENGTH and ADDRESS as asked; our SCOPE
  }
}

/**
 * An error response (FORMERR, NOTIMP, BADVERS, SERVFAIL, REFUSED): the header,
 * the question when one was read, an OPT when the query had one (always for
 * BADVERS, whose high bits travel in the OPT). `undefined` for DROP.
 */
export function writeError(query: Buffer, q: Query, rcode: number, udpSize: number): Buffer | undefined {
  if (rcode === DROP || query.length < HEADER_SIZE) return undefined;
  const qEnd = q.questionEnd || HEADER_SIZE;
  const withOpt = q.edns || rcode > 0xf;
  const ecs = rcode === RCODE.FORMERR || rcode === RCODE.BADVERS ? -1 : q.ecs;
  const optq = withOpt ? { ...q, edns: true, ecs } : q;
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
  if (end - start > 256) return at + src.copy(dst, at, start, end);
  for (let i = start; i < end; i++) dst[at++] = src[i];
  return at;
}

/** The size limit of a reply to `q` over UDP: the client's EDNS size (at least 512), at most ours. */
export function udpLimit(q: Query, ours: number): number {
  if (!q.edns) return CLASSIC_UDP_SIZE;
  return q.udpSize < ours ? q.udpSize : ours < CLASSIC_UDP_SIZE ? CLASSIC_UDP_SIZE : ours;
}

/** The ECS option's ADDRESS, zero-padded to a full address, as text. */
export function ecsAddress(buf: Buffer, q: Query): string {
  const octets = q.ecsLength - 4;
  const bytes = new Uint8Array(q.ecsFamily === 1 ? 4 : 16);
  for (let i = 0; i < octets; i++) bytes[i] = buf[q.ecs + 4 + i];
  return formatAddress(bytes);
}

/** 4 or 16 octets as IPv4 dotted quad or RFC 5952 IPv6 text. */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) => groups.slice(from, to).map((g) => g.toString(16)).join(':');
  return best < 0 ? hex(0, 8) : `${hex(0, best)}::${hex(best + bestLen, 8)}`;
}

/** IPv4 or IPv6 text as 4 or 16 octets; undefined when it is neither. */
export function parseAddress(text: string): Uint8Array | undefined {
  if (!text.includes(':')) {
    const parts = text.split('.');
    if (parts.length !== 4) return undefined;
    const out = new Uint8Array(4);
    for (let i = 0; i < 4; i++) {
      if (!/^\d{1,3}$/.test(parts[i]) || Number(parts[i]) > 255) return undefined;
      out[i] = Number(parts[i]);
    }
    return out;
  }
  let head = text;
  let tail = '';
  const gap = text.indexOf('::');
  if (gap >= 0) {
    head = text.slice(0, gap);
    tail = text.slice(gap + 2);
    if (tail.includes('::')) return undefined;
  }
  const words = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (i === parts.length - 1 && part.includes('.')) {
        const v4 = parseAddress(part);
        if (!v4) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) out.push(parseInt(part, 16));
      else return undefined;
    }
    return out;
  };
  const h = words(head);
  const t = words(tail);
  if (!h || !t) return undefined;
  const fill = 8 - h.length - t.length;
  if (gap >= 0 ? fill < 1 : fill !== 0) return undefined;
  const all = [...h, ...new Array<number>(fill).fill(0), ...t];
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

/** A copy of `bytes` with every bit past `prefix` cleared. */
export function maskAddress(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  const full = prefix >> 3;
  out.set(bytes.subarray(0, Math.min(full, bytes.length)));
  if (full < bytes.length && prefix & 7) out[full] = bytes[full] & (0xff << (8 - (prefix & 7)));
  return out;
}
