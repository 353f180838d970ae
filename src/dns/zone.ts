// The zone compiled from a snapshot: every name that exists, and for each the
// response bodies that do not depend on the client, encoded once with dns2.
//
// A body is what follows the question in a response. dns2 encodes it inside a
// whole template message whose question has the same wire length as the query
// will, so its compression pointers (to the question at offset 12 and within
// the body) stay valid when the hot path glues the body after the question as
// asked, in whatever letter case.

import { Packet, type Question, type Resource } from 'dns2';
import { DNSSEC_TYPE } from '../dnssec/rdata.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import { CLASS_IN, HEADER_SIZE, RCODE, TYPE, type Body } from './wire.js';
import { compileRecords, createWildcardLookup, type CompiledRecords, type Rr } from './zone-records.js';

/** A name that steer() answers for: `<service>.<apex>` or `<region>.<service>.<apex>`. */
export type DynamicName = { readonly index: number; readonly service: string; readonly pinnedRegion?: string };

export type ZoneNode = {
  readonly name: string;
  /** Answers that depend on nothing but the snapshot, by QTYPE (ANY included). */
  readonly bodies: ReadonlyMap<number, Body>;
  /** NOERROR, no answer, the SOA in authority. */
  readonly nodata: Body;
  /** The answer to a QTYPE without a body: `nodata`, or at a CNAME the CNAME (and the chain after it). */
  readonly other: Body;
  readonly dynamic?: DynamicName;
};

export type Zone = {
  readonly apex: string;
  /** Nodes by lowercased wire-format name (see Query.key). */
  readonly nodes: ReadonlyMap<string, ZoneNode>;
  /** The nodes steer() answers for, by DynamicName.index. */
  readonly dynamic: readonly ZoneNode[];
  /** The NXDOMAIN body for a name under the apex, or undefined when the name is outside the zone. */
  nxdomain(key: string): Body | undefined;
  /** The zone has wildcard records: a name not in `nodes` may be answered by `wildcard`. */
  readonly wildcards: boolean;
  /** For a name not in `nodes`: the wildcard node that answers it (RFC 4592), or undefined (NXDOMAIN, or outside the zone). */
  wildcard(key: string): ZoneNode | undefined;
  /** An answer section of A or AAAA records owned by the question's name. */
  addressAnswers(addresses: readonly string[], type: number, ttl: number): Body;
  /** An answer section of one CNAME owned by the question's name (a hostname endpoint's). */
  cnameAnswer(target: string, ttl: number): Body;
};

/** `Gslb.Example.com.` → `\x04gslb\x07example\x03com\x00` (latin1), the form Query.key has. */
export function wireKey(name: string): string {
  const labels = name.toLowerCase().split('.').filter(Boolean);
  return labels.map((l) => String.fromCharCode(l.length) + l).join('') + '\0';
}

/**
 * Encodes the records after a question for `qname` with dns2. The question is
 * part of the template only so that compression can point into it.
 */
export function encodeBody(qname: string, qtype: number, sections: { answers?: Rr[]; authorities?: Rr[]; additionals?: Rr[] }, rcode: number): Body {
  const packet = new Packet();
  packet.questions.push({ name: qname, type: qtype, class: CLASS_IN } as Question);
  packet.answers = (sections.answers ?? []).map((r) => ({ class: CLASS_IN, ...r }) as Resource);
  packet.authorities = (sections.authorities ?? []).map((r) => ({ class: CLASS_IN, ...r }) as Resource);
  packet.additionals = (sections.additionals ?? []).map((r) => ({ class: CLASS_IN, ...r }) as Resource);
  const wire = packet.toBuffer();
  const questionEnd = HEADER_SIZE + wireKey(qname).length + 4;
  return {
    bytes: Buffer.from(wire.subarray(questionEnd)),
    an: packet.answers.length,
    ns: packet.authorities.length,
    ar: packet.additionals.length,
    rcode,
    aa: true,
  };
}

/** A name of `length` wire octets (labels of `*`, which no zone name contains), to lay out templates for names not in the zone. */
function filler(length: number): string {
  const labels: string[] = [];
  let left = length;
  while (left > 0) {
    let take = Math.min(left, 64);
    if (left - take === 1) take -= 1; // a label needs at least 2 octets
    labels.push('*'.repeat(take - 1));
    left -= take;
  }
  return labels.join('.');
}

const within = (name: string, apex: string) => name === apex || name.endsWith(`.${apex}`);
const familyOf = (address: string) => (address.includes(':') ? TYPE.AAAA : TYPE.A);

const compiled = new WeakMap<Snapshot, Zone>();

/** The zone of a snapshot, compiled once however many readers ask (DNS, /v1/resolve). */
export function zoneOf(snapshot: Snapshot): Zone {
  let zone = compiled.get(snapshot);
  if (!zone) compiled.set(snapshot, (zone = compileZone(snapshot)));
  return zone;
}

/** Compiles the zone of a snapshot. Pure; throws only on an address dns2 cannot encode. */
export function compileZone(snapshot: Snapshot): Zone {
  const apex = snapshot.zone.apex;
  const { records, glue, negative } = staticRecords(snapshot);
  const { dynamic, dynamicAt } = dynamicNames(snapshot, records);
  const statics = compileRecords({ apex, records: snapshot.zone.records ?? [], zoneRecords: records, dynamic: new Set(dynamicAt.keys()), negative: negative[0], anyTtl: snapshot.zone.soa.ttl });
  const nodes = compileNodes(snapshot, records, glue, negative, dynamicAt, statics);
  const nxdomain = createNxdomain(apex, negative);
  const addressAnswers = createAddressAnswers();
  const cnameAnswer = (target: string, ttl: number) => addressAnswers([target], TYPE.CNAME, ttl);
  const dynamicNodes = dynamic.map((d) => [...nodes.values()].find((n) => n.dynamic === d)!);
  const wildcardNodes = new Map([...statics.wildcards].map(([parent, owner]) => [wireKey(parent), nodes.get(wireKey(owner))!]));
  const wildcard = createWildcardLookup(nodes, wildcardNodes, wireKey(apex));
  return { apex, nodes, dynamic: dynamicNodes, nxdomain, wildcards: wildcardNodes.size > 0, wildcard, addressAnswers, cnameAnswer };
}

/** The records that do not depend on the client, by owner name: SOA, NS and in-zone glue; and the SOA of negative answers. */
function staticRecords(snapshot: Snapshot): { records: Map<string, Rr[]>; glue: Rr[]; negative: Rr[] } {
  const { zone } = snapshot;
  const apex = zone.apex;
  const soa = zone.soa;
  const mname = soa.mname ?? zone.nameservers[0].name;
  const negativeTtl = Math.min(soa.ttl, soa.minimum);
  const soaRecord = (ttl: number): Rr => ({
    name: apex,
    type: TYPE.SOA,
    ttl,
    primary: mname,
    admin: soa.rname,
    serial: snapshot.version >>> 0,
    refresh: soa.refresh,
    retry: soa.retry,
    expiration: soa.expire,
    minimum: soa.minimum,
  });
  const negative = [soaRecord(negativeTtl)];

  // Static records by owner name.
  const records = new Map<string, Rr[]>();
  const add = (r: Rr) => {
    const list = records.get(r.name) ?? [];
    list.push(r);
    records.set(r.name, list);
  };
  add(soaRecord(soa.ttl));
  // A signed zone's DNSKEY, CDS and CDNSKEY at the apex, as control published them (dns2 encodes a DNSKEY from its fields, writes the others raw).
  for (const set of snapshot.dnssec?.keyRrsets ?? []) for (const data of set.rdata) add({ name: apex, type: set.type, ttl: set.ttl, ...keyRdata(set.type, data) });
  const glue: Rr[] = [];
  for (const ns of zone.nameservers) {
    add({ name: apex, type: TYPE.NS, ttl: zone.nsTtl, ns: ns.name });
    if (!within(ns.name, apex)) continue;
    for (const address of ns.addresses) {
      const r: Rr = { name: ns.name, type: familyOf(address), ttl: zone.nsTtl, address };
      add(r);
      glue.push(r);
    }
  }
  return { records, glue, negative };
}

function keyRdata(type: number, data: Buffer): Partial<Rr> {
  if (type !== DNSSEC_TYPE.DNSKEY) return { data };
  return { flags: data.readUInt16BE(0), protocol: data[2], algorithm: data[3], key: data.subarray(4).toString('base64') };
}

/** The names steer() answers for: each service, and each region it may use pinned under it. */
function dynamicNames(snapshot: Snapshot, records: ReadonlyMap<string, Rr[]>): { dynamic: DynamicName[]; dynamicAt: Map<string, DynamicName> } {
  const { zone } = snapshot;
  const apex = zone.apex;
  const dynamic: DynamicName[] = [];
  const dynamicAt = new Map<string, DynamicName>();
  const addDynamic = (name: string, service: string, pinnedRegion?: string) => {
    // A name server's own name keeps its glue: resolvers must reach it.
    if (records.has(name) || dynamicAt.has(name)) return;
    const d: DynamicName = { index: dynamic.length, service, pinnedRegion };
    dynamic.push(d);
    dynamicAt.set(name, d);
  };
  for (const service of zone.services) {
    const name = `${service.name}.${apex}`;
    addDynamic(name, service.name);
    for (const region of service.regions ?? snapshot.regions.map((r) => r.id)) addDynamic(`${region}.${name}`, service.name, region);
  }
  return { dynamic, dynamicAt };
}

/** Every name that exists, with its static answers by QTYPE, its ANY answer (RFC 8482) and its NODATA. */
function compileNodes(
  snapshot: Snapshot,
  records: ReadonlyMap<string, Rr[]>,
  glue: Rr[],
  negative: Rr[],
  dynamicAt: ReadonlyMap<string, DynamicName>,
  statics: CompiledRecords,
): Map<string, ZoneNode> {
  const apex = snapshot.zone.apex;
  // Every owner name and each name between it and the apex (empty non-terminals) exists.
  const names = new Set<string>();
  for (const name of [...records.keys(), ...dynamicAt.keys(), ...statics.at.keys()]) {
    for (let n = name; within(n, apex); n = n.slice(n.indexOf('.') + 1)) {
      names.add(n);
      if (n === apex) break;
    }
  }

  const nodes = new Map<string, ZoneNode>();
  for (const name of names) {
    const fixed = statics.at.get(name);
    if (fixed && statics.recordOnly.has(name)) {
      nodes.set(wireKey(name), { name, bodies: fixed.bodies, nodata: fixed.nodata, other: fixed.other ?? fixed.nodata, dynamic: undefined });
      continue;
    }
    const own = records.get(name) ?? [];
    const bodies = new Map<number, Body>();
    for (const type of new Set(own.map((r) => r.type))) {
      const answers = own.filter((r) => r.type === type);
      const additionals = type === TYPE.NS ? glue : [];
      bodies.set(type, encodeBody(name, type, { answers, additionals }, RCODE.NOERROR));
    }
    // RFC 8482: ANY gets one synthesized HINFO record, not the node's records.
    const hinfo: Rr = { name, type: TYPE.HINFO, ttl: snapshot.zone.soa.ttl, data: Buffer.from('\x07RFC8482\x00', 'latin1') };
    bodies.set(TYPE.ANY, encodeBody(name, TYPE.ANY, { answers: [hinfo] }, RCODE.NOERROR));
    // Static records beside the zone's own, at the apex say (no type is both: config/records.ts); a CNAME's ANY is its CNAME.
    for (const [type, b] of fixed?.bodies ?? []) if (!bodies.has(type) || (type === TYPE.ANY && fixed?.other)) bodies.set(type, b);
    const nodata = encodeBody(name, TYPE.TXT, { authorities: negative }, RCODE.NOERROR);
    nodes.set(wireKey(name), { name, bodies, nodata, other: fixed?.other ?? nodata, dynamic: dynamicAt.get(name) });
  }
  return nodes;
}

/** `Zone.nxdomain`: bodies made per length of the name in front of the apex, on first use. */
function createNxdomain(apex: string, negative: Rr[]): (key: string) => Body | undefined {
  const apexKey = wireKey(apex);
  const nxBodies = new Map<number, Body>();
  return (key: string): Body | undefined => {
    const prefix = key.length - apexKey.length;
    if (prefix <= 0 || !key.endsWith(apexKey)) return undefined;
    // The apex must start at a label boundary of the query name.
    let p = 0;
    while (p < prefix) p += key.charCodeAt(p) + 1;
    if (p !== prefix) return undefined;
    let body = nxBodies.get(prefix);
    if (!body) {
      body = encodeBody(`${filler(prefix)}.${apex}`, TYPE.A, { authorities: negative }, RCODE.NXDOMAIN);
      nxBodies.set(prefix, body);
    }
    return body;
  };
}

/**
 * `Zone.addressAnswers` (and a CNAME's, whose one "address" is its target):
 * one record encoded per address, owner and TTL left to fill in per answer set.
 */
function createAddressAnswers(): (addresses: readonly string[], type: number, ttl: number) => Body {
  const rdata = new Map<string, Buffer>();
  return (addresses: readonly string[], type: number, ttl: number): Body => {
    const parts: Buffer[] = [];
    for (const address of addresses) {
      const key = `${type}|${address}`;
      let rr = rdata.get(key);
      if (!rr) {
        // Owner '' encodes as the root (one octet), swapped below for a pointer to the question.
        const data = type === TYPE.CNAME ? { domain: address } : { address };
        rr = Packet.Resource.encode({ name: '', type, class: CLASS_IN, ttl: 0, ...data } as Resource);
        rdata.set(key, rr);
      }
      const out = Buffer.allocUnsafe(rr.length + 1);
      out[0] = 0xc0;
      out[1] = HEADER_SIZE;
      rr.copy(out, 2, 1);
      out.writeUInt32BE(Math.min(ttl >>> 0, 0x7fffffff), 6);
      parts.push(out);
    }
    return { bytes: Buffer.concat(parts), an: parts.length, ns: 0, ar: 0, rcode: RCODE.NOERROR, aa: true };
  };
}
