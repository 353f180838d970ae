// The hot path's DNS wire format: the numbers every reader and writer shares
// (types, classes, rcodes, header flags) and the two shapes passed between
// them: a query as read (query-reader.ts, edns.ts) and a pre-encoded response
// body (zone.ts) that response-writer.ts glues after the question. Everything
// else is encoded ahead of time with dns2 (see zone.ts); nothing on the hot
// path allocates more than the query object, the lowercased name and the
// response buffer.

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, HINFO: 13, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, IXFR: 251, AXFR: 252, MAILB: 253, MAILA: 254, ANY: 255, CAA: 257 } as const;
export const CLASS_IN = 1;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
/** `rcode` of a message that gets no reply at all. */
export const DROP = -1;
export const OPTION_ECS = 8;
/** edns-tcp-keepalive (RFC 7828). */
export const OPTION_KEEPALIVE = 11;
/** What a query's OPT said about TCP keepalive: nothing, asked (no data, as RFC 7828 §3.2.1 says), or a TIMEOUT a client must not send. */
export const KEEPALIVE = { NONE: 0, ASKED: 1, WITH_TIMEOUT: 2 } as const;

export const HEADER_SIZE = 12;
/** RFC 1035 §4.2.1: the UDP limit without EDNS, and the least an EDNS client may ask for. */
export const CLASSIC_UDP_SIZE = 512;

export const FLAG_QR = 0x8000;
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;
export const FLAG_CD = 0x0010;

export const OPCODE_QUERY = 0;

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
  /** The query carried a usable OPT record (a broken one is FORMERR without OPT): the reply carries one too. */
  edns: boolean;
  /** Requestor's UDP payload size (OPT CLASS), at least 512. */
  udpSize: number;
  /** DNSSEC OK bit, copied to the reply's OPT (RFC 3225 §3). */
  dnssecOk: boolean;
  /** Compact Answers OK (RFC 9824): NXDOMAIN wanted back with a compact denial; echoed with DO. */
  compactOk: boolean;
  /** Offset of the ECS option's data (FAMILY) in the query, or -1. */
  ecs: number;
  /** Length of the ECS option's data (4 + address octets). */
  ecsLength: number;
  /** 1 = IPv4, 2 = IPv6. */
  ecsFamily: number;
  ecsSourcePrefix: number;
  /** The edns-tcp-keepalive option in the query (`KEEPALIVE`). */
  keepalive: number;
  /** The TIMEOUT (100 ms units) our OPT offers, set by the responder over TCP when the query asked; -1 for none. */
  tcpTimeout: number;
};

/** A pre-encoded response body: the records after the question, and their counts. */
export type Body = {
  readonly bytes: Buffer;
  readonly an: number;
  readonly ns: number;
  readonly ar: number;
  readonly rcode: number;
  readonly aa: boolean;
  /** A name that does not exist, answered NOERROR by compact denial (RFC 9824): rate-limited as an NXDOMAIN. */
  readonly nx?: boolean;
};
