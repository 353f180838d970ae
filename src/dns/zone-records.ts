// The zone's static records (`records:` in its settings) compiled into
// response bodies, once per set of records (a new snapshot re-stamps the SOA
// serial): each RRset answered as written, a CNAME for every QTYPE with the
// in-zone chain after it, and wildcards (RFC 4592).
//
// dns2 encodes each record's RDATA once, alone (so names in RDATA are never
// compressed: RFC 2782 forbids it for SRV targets). Bodies are assembled here
// from those RDATA with one rule that keeps them valid for any question: the
// only compression pointer is the owner of the records at the query's name
// (0xc00c, the question's name); every other name is written out. So a body
// does not depend on the question's length, and a wildcard's bodies serve
// every name it synthesizes for.

import { Packet, type Resource } from 'dns2';
import { DEFAULT_RECORD_TTL, ownerName, parseRecordValue, RECORD_TYPE_CODE } from '../config/record-values.js';
import type { RecordDoc } from '../config/records.js';
import { CLASS_IN, HEADER_SIZE, RCODE, TYPE, type Body } from './wire.js';

/** A record in dns2's shape (as zone.ts builds the SOA, NS and glue). */
export type Rr = Partial<Resource> & { name: string; type: number; ttl: number };

/** One RRset: its type, TTL and each record's RDATA (and a CNAME's target, to follow the chain). */
type Rrset = { readonly type: number; readonly ttl: number; readonly rdata: readonly Buffer[]; readonly target?: string };
type Rrsets = ReadonlyMap<number, Rrset>;

/** The bodies of one name that exists through static records. */
export type RecordNode = {
  /** By QTYPE; ANY too (the RFC 8482 HINFO, or at a CNAME the CNAME). */
  readonly bodies: ReadonlyMap<number, Body>;
  /** For a QTYPE without a body: at a CNAME, the CNAME (and its chain); undefined elsewhere (NODATA). */
  readonly other?: Body;
  /** NODATA, valid for every question (a wildcard's serves every name it synthesizes). */
  readonly nodata: Body;
};

export type CompiledRecords = {
  /** By name (absolute, lowercase): every owner of a record, and the empty non-terminals above them. */
  readonly at: ReadonlyMap<string, RecordNode>;
  /** The names of `at` that exist only through records (none of the zone's own names or steer()'s is at or below them). */
  readonly recordOnly: ReadonlySet<string>;
  /** Wildcard owners (`*.<parent>`) by parent name. */
  readonly wildcards: ReadonlyMap<string, string>;
};

export type RecordZone = {
  readonly apex: string;
  readonly records: readonly RecordDoc[];
  /** The zone's own records (SOA, NS, glue) by owner name: a CNAME's chain may end at them. */
  readonly zoneRecords: ReadonlyMap<string, readonly Rr[]>;
  /** Names steer() answers: a chain stops there (the answer depends on the client). */
  readonly dynamic: ReadonlySet<string>;
  /** The SOA of negative answers; its serial is the snapshot's version. */
  readonly negative: Rr;
  /** The TTL of the RFC 8482 HINFO. */
  readonly anyTtl: number;
};

/** A chain follows at most this many CNAMEs after the first. */
const MAX_CHAIN = 8;
const QNAME = Buffer.from([0xc0, HEADER_SIZE]);

const within = (name: string, apex: string) => name === apex || name.endsWith(`.${apex}`);
const parent = (name: string) => name.slice(name.indexOf('.') + 1);

/** A name in wire format, uncompressed. */
function wireName(name: string): Buffer {
  const labels = name.split('.').filter(Boolean);
  return Buffer.from(labels.map((l) => String.fromCharCode(l.length) + l).join('') + '\0', 'latin1');
}

/** A record's RDATA, encoded by dns2 alone (no other names to compress against). */
export function rdataOf(rr: Partial<Resource> & { type: number }): Buffer {
  // Owner: the root (1 octet), then TYPE, CLASS, TTL and RDLENGTH (10): the RDATA follows.
  const whole = Packet.Resource.encode({ ...rr, name: '', class: CLASS_IN, ttl: 0 } as Resource);
  return Buffer.from(whole.subarray(11));
}

/** The bytes of an RRset's records under `owner` (wire form or the question's pointer). */
function rrsetBytes(owner: Buffer, set: Rrset): Buffer[] {
  return set.rdata.map((rdata) => {
    const fixed = Buffer.alloc(10);
    fixed.writeUInt16BE(set.type, 0);
    fixed.writeUInt16BE(CLASS_IN, 2);
    fixed.writeUInt32BE(Math.min(set.ttl >>> 0, 0x7fffffff), 4);
    fixed.writeUInt16BE(rdata.length, 8);
    return Buffer.concat([owner, fixed, rdata]);
  });
}

type Part = { readonly owner: Buffer; readonly set: Rrset };

/** Bodies whose last record is an SOA: its serial (the snapshot's version) sits 20 octets from the end (refresh, retry, expire, minimum follow). */
const endsWithSoa = new WeakSet<Body>();

function body(answers: readonly Part[], authority: Part | undefined, rcode: number): Body {
  const an = answers.flatMap((p) => rrsetBytes(p.owner, p.set));
  const ns = authority ? rrsetBytes(authority.owner, authority.set) : [];
  const out: Body = { bytes: Buffer.concat([...an, ...ns]), an: an.length, ns: ns.length, ar: 0, rcode, aa: true };
  if ((authority ?? answers.at(-1))?.set.type === TYPE.SOA) endsWithSoa.add(out);
  return out;
}

/** `b` with the serial of its final SOA set (a copy), or `b` itself when it has none. */
function withSerial(b: Body, serial: number): Body {
  if (!endsWithSoa.has(b)) return b;
  const bytes = Buffer.from(b.bytes);
  bytes.writeUInt32BE(serial >>> 0, bytes.length - 20);
  return { ...b, bytes };
}

/** The records of the zone document as RRsets by owner name. */
function recordSets(apex: string, records: readonly RecordDoc[]): Map<string, Map<number, Rrset>> {
  const out = new Map<string, Map<number, Rrset>>();
  for (const r of records) {
    const owner = ownerName(r.name, apex);
    // Validated before it got here; should one not be, the zone does not compile and the previous one keeps answering.
    if ('error' in owner) throw new Error(`records: "${r.name}": ${owner.error}`);
    const type = RECORD_TYPE_CODE[r.type];
    const rdata: Buffer[] = [];
    let target: string | undefined;
    for (const text of r.values) {
      const v = parseRecordValue(r.type, text, apex);
      if ('error' in v) throw new Error(`records: ${owner.name} ${r.type} "${text}": ${v.error}`);
      if ('domain' in v.data) target = v.data.domain;
      rdata.push(rdataOf({ type, ...v.data } as Partial<Resource> & { type: number }));
    }
    const sets = out.get(owner.name) ?? new Map<number, Rrset>();
    sets.set(type, { type, ttl: r.ttl ?? DEFAULT_RECORD_TTL, rdata, target });
    out.set(owner.name, sets);
  }
  return out;
}

/** The zone's own records as RRsets by owner name, under the records at the same names. */
function withZoneRecords(own: ReadonlyMap<string, Map<number, Rrset>>, rrs: ReadonlyMap<string, readonly Rr[]>): Map<string, Map<number, Rrset>> {
  const out = new Map(own);
  for (const [name, list] of rrs) {
    const sets = new Map<number, Rrset>();
    for (const rr of list) {
      const set = sets.get(rr.type);
      const rdata = rdataOf(rr);
      sets.set(rr.type, { type: rr.type, ttl: rr.ttl, rdata: set ? [...set.rdata, rdata] : [rdata] });
    }
    for (const [type, set] of own.get(name) ?? []) if (!sets.has(type)) sets.set(type, set);
    out.set(name, sets);
  }
  return out;
}

/** What a name is, to a CNAME chain that reaches it. */
type Found = { kind: 'data'; owner: string; sets: Rrsets } | { kind: 'nxdomain' } | { kind: 'stop' };

/** The last zone's records compiled at serial 0, by everything they depend on but the serial. */
let last: { key: string; compiled: CompiledRecords } | undefined;

/**
 * Compiles the static records of a zone: the bodies at each name they make
 * exist, and the wildcards. A new snapshot with the same records (every
 * health change) costs a copy of the bodies that carry the SOA, whose serial
 * is the snapshot's version: dns2's encoding is slow (tens of µs a record),
 * and a worker answers nothing while it compiles.
 */
export function compileRecords(zone: RecordZone): CompiledRecords {
  const serial = Number(zone.negative.serial ?? 0);
  const atZero = (rr: Rr): Rr => (rr.type === TYPE.SOA ? { ...rr, serial: 0 } : rr);
  const zoneRecords = new Map([...zone.zoneRecords].map(([name, rrs]) => [name, rrs.map(atZero)]));
  const key = JSON.stringify([zone.apex, zone.records, [...zoneRecords], [...zone.dynamic], atZero(zone.negative), zone.anyTtl]);
  if (last?.key !== key) last = { key, compiled: compileAtZero({ ...zone, zoneRecords, negative: atZero(zone.negative) }) };
  const { at, recordOnly, wildcards } = last.compiled;
  if (serial === 0) return last.compiled;
  const reserial = (b: Body) => withSerial(b, serial);
  const nodes = new Map<string, RecordNode>();
  for (const [name, node] of at) {
    const bodies = [...node.bodies.values()].some((b) => endsWithSoa.has(b)) ? new Map([...node.bodies].map(([t, b]) => [t, reserial(b)])) : node.bodies;
    nodes.set(name, { bodies, other: node.other && reserial(node.other), nodata: reserial(node.nodata) });
  }
  return { at: nodes, recordOnly, wildcards };
}

function compileAtZero(zone: RecordZone): CompiledRecords {
  const { apex } = zone;
  const own = recordSets(apex, zone.records);
  const all = withZoneRecords(own, zone.zoneRecords);
  // Every name that exists: owners, names steer() answers, and the names between them and the apex.
  const ancestors = (list: Iterable<string>) => {
    const out = new Set<string>();
    for (const name of list)
      for (let n = name; within(n, apex); n = parent(n)) {
        out.add(n);
        if (n === apex) break;
      }
    return out;
  };
  const names = ancestors([...all.keys(), ...zone.dynamic]);
  const theirs = ancestors([...zone.zoneRecords.keys(), ...zone.dynamic]);
  const mine = ancestors(own.keys());
  const wildcards = new Map<string, string>();
  for (const name of own.keys()) if (name.startsWith('*.')) wildcards.set(name.slice(2), name);

  const find = (name: string): Found => {
    if (!within(name, apex) || zone.dynamic.has(name)) return { kind: 'stop' };
    if (names.has(name)) return { kind: 'data', owner: name, sets: all.get(name) ?? new Map() };
    let encloser = parent(name);
    while (!names.has(encloser)) encloser = parent(encloser);
    const wildcard = wildcards.get(encloser);
    return wildcard ? { kind: 'data', owner: name, sets: own.get(wildcard)! } : { kind: 'nxdomain' };
  };

  const soa: Part = { owner: wireName(apex), set: { type: TYPE.SOA, ttl: zone.negative.ttl, rdata: [rdataOf(zone.negative)] } };
  const nodata = body([], soa, RCODE.NOERROR);
  const hinfo = body([{ owner: QNAME, set: { type: TYPE.HINFO, ttl: zone.anyTtl, rdata: [Buffer.from('\x07RFC8482\x00', 'latin1')] } }], undefined, RCODE.NOERROR);
  const at = new Map<string, RecordNode>();
  for (const name of mine) {
    const sets = own.get(name);
    const cname = sets?.get(TYPE.CNAME);
    if (cname) {
      at.set(name, { ...cnameNode(cname, name, find, soa), nodata });
      continue;
    }
    const bodies = new Map<number, Body>([[TYPE.ANY, hinfo]]);
    for (const [type, set] of sets ?? []) bodies.set(type, body([{ owner: QNAME, set }], undefined, RCODE.NOERROR));
    at.set(name, { bodies, nodata });
  }
  return { at, recordOnly: new Set([...mine].filter((n) => !theirs.has(n))), wildcards };
}

/**
 * A CNAME's bodies: the CNAME alone for QTYPE CNAME and ANY (RFC 8482: one
 * RRset); for every other QTYPE, the CNAME and the chain through the zone's
 * static names after it: the target's RRset of that type, or the SOA with
 * NOERROR (the target has no such data) or NXDOMAIN (no such target, RFC
 * 6604). A chain that leaves the zone, reaches a name steer() answers, or
 * loops ends with the CNAMEs alone: the resolver follows them.
 */
function cnameNode(cname: Rrset, name: string, find: (name: string) => Found, soa: Part): Omit<RecordNode, 'nodata'> {
  const first: Part = { owner: QNAME, set: cname };
  const hops: Part[] = [first];
  const seen = new Set([name]);
  let target = cname.target!;
  let end: Found = { kind: 'stop' };
  for (let i = 0; i < MAX_CHAIN && !seen.has(target); i++) {
    seen.add(target);
    end = find(target);
    const next = end.kind === 'data' ? end.sets.get(TYPE.CNAME) : undefined;
    if (!next) break;
    hops.push({ owner: wireName(target), set: next });
    target = next.target!;
    end = { kind: 'stop' };
  }
  const alone = body([first], undefined, RCODE.NOERROR);
  const bodies = new Map<number, Body>([
    [TYPE.CNAME, alone],
    [TYPE.ANY, alone],
  ]);
  let other = body(hops, undefined, RCODE.NOERROR);
  if (end.kind === 'data') {
    const owner = wireName(end.owner);
    for (const [type, set] of end.sets) if (type !== TYPE.CNAME) bodies.set(type, body([...hops, { owner, set }], undefined, RCODE.NOERROR));
    other = body(hops, soa, RCODE.NOERROR);
  } else if (end.kind === 'nxdomain') {
    other = body(hops, soa, RCODE.NXDOMAIN);
  }
  return { bodies, other };
}

/**
 * `Zone.wildcard`: for a name that is not in the zone, the wildcard at its
 * closest encloser (the longest ancestor that exists, empty non-terminals
 * included), or undefined: RFC 4592 §3.3.1. `key` is a query's wire key.
 */
export function createWildcardLookup<N>(nodes: ReadonlyMap<string, N>, wildcards: ReadonlyMap<string, N>, apexKey: string): (key: string) => N | undefined {
  return (key: string): N | undefined => {
    let p = 0;
    for (;;) {
      p += key.charCodeAt(p) + 1;
      if (key.length - p < apexKey.length) return undefined;
      const suffix = key.slice(p);
      if (nodes.has(suffix)) return wildcards.get(suffix);
    }
  };
}
