// Answers to queries with the DO bit in a signed zone (src/dnssec/). Every
// unsigned body (zone.ts, steered-answers.ts) gets a signed twin: its records
// read back, each RRset of the answer and authority sections followed by its
// RRSIG, written again with the owner names pointing at the question. Twins
// live as long as the snapshot (bounded); their signatures come from the
// ZSK's signer, which outlives snapshots and signs each distinct RRset once,
// so a health change that re-encodes every answer re-signs none of them.
//
// The apex's DNSKEY, CDS and CDNSKEY RRsets carry control's signatures (its
// KSKs never leave it). Denial is compact (RFC 9824): NODATA with an NSEC at
// the name listing its types, and a name that does not exist answered as
// NODATA too, its NSEC listing NXNAME, with the NXDOMAIN rcode restored for a
// client that set the CO flag. Those NSECs, and wildcard answers (signed as
// the name asked, so no proof of the closest encloser is needed), are made
// per name: they have a signer of their own with a small cache, so a flood of
// random names cannot push the zone's own signatures out.
import { compactNsec, nxnameNsec } from '../dnssec/denial.js';
import { nameText, nameWire } from '../dnssec/names.js';
import { DNSSEC_TYPE } from '../dnssec/rdata.js';
import type { Rr } from '../dnssec/sign.js';
import { createSigner, type Signer } from '../dnssec/signer.js';
import type { ZoneSigning } from '../snapshot/snapshot.js';
import { readBody, recordBytes, type BodyRecord } from './body-records.js';
import { remember } from './served-cache.js';
import { HEADER_SIZE, RCODE, TYPE, type Body } from './wire.js';
import type { ZoneNode } from './zone.js';

export interface SignedZone {
  /** Moves when the twins are made anew (every day, so that none holds a signature near its expiry): a twin kept elsewhere is good while it stays. */
  generation(): number;
  /** The signed twin of `body`, the answer at `key` (a name in the zone, wire form); `originalTtl` for a health-derived TTL. */
  answer(body: Body, key: string, originalTtl?: number): Body;
  /** NODATA at `node` for `qtype`, with the NSEC that lists its types. */
  nodata(node: ZoneNode, key: string, qtype: number): Body;
  /** A wildcard's answer (or NODATA) synthesized for `key`, signed as that name's. */
  synthesized(node: ZoneNode, body: Body, key: string, qtype: number): Body;
  /** A name that does not exist: NODATA with an NXNAME NSEC; NXDOMAIN when `compact` (the CO flag). `nx` is the unsigned NXDOMAIN body. */
  nxdomain(nx: Body, key: string, compact: boolean): Body;
}

type ReadRr = BodyRecord;

const KEY_TYPES = new Set<number>([DNSSEC_TYPE.DNSKEY, DNSSEC_TYPE.CDS, DNSSEC_TYPE.CDNSKEY]);
/** Twins kept per snapshot; one evicted is made again from the signer's cache. */
const MAX_TWINS = 100_000;
/** Names answered per name (NXDOMAIN, wildcards) whose twins and signatures are kept. */
const MAX_PER_NAME = 4096;
/** Twins are made again after this: a signature in one is then at most its signer's refresh age plus this. */
const TWIN_LIFETIME_MS = 86_400_000;

type Signers = { zone: Signer; perName: Signer };
const signers = new Map<string, Signers>();

/** The ZSK's signers, the same across snapshots (the cache is what makes a new snapshot cheap). */
function signersOf(apex: string, signing: ZoneSigning): Signers {
  const zsk = signing.zsk!;
  const id = `${apex}|${zsk.rdata.toString('base64')}`;
  let s = signers.get(id);
  if (!s) {
    s = { zone: createSigner({ zone: apex, key: zsk }), perName: createSigner({ zone: apex, key: zsk, maxEntries: MAX_PER_NAME }) };
    // A rollover makes a second; older ones go.
    if (signers.size >= 4) signers.delete(signers.keys().next().value!);
    signers.set(id, s);
  }
  return s;
}

/** The signed side of a snapshot's zone; undefined when this snapshot may not sign (no ZSK). */
export function createSignedZone(apex: string, signing: ZoneSigning | undefined): SignedZone | undefined {
  if (!signing?.zsk) return undefined;
  const { zone: zoneSigner, perName } = signersOf(apex, signing);
  const keySigs = new Map(signing.keyRrsets.map((r) => [r.type, r.rrsigs]));
  let twins = new Map<Body, Body>();
  let nodatas = new Map<string, Body>();
  let named = new Map<string, Body>();
  let negativeSoa: ReadRr[] | undefined;
  let resetAt = Date.now() + TWIN_LIFETIME_MS;
  let calls = 0;
  let generation = 0;

  function fresh(): void {
    if ((++calls & 0xfff) !== 0 || Date.now() < resetAt) return;
    twins = new Map();
    nodatas = new Map();
    named = new Map();
    negativeSoa = undefined;
    resetAt = Date.now() + TWIN_LIFETIME_MS;
    generation++;
  }

  /** Each RRset followed by its RRSIG: control's for the key RRsets, the signer's for the rest. */
  function withSigs(records: readonly ReadRr[], signer: Signer, originalTtl?: number): ReadRr[] {
    const out: ReadRr[] = [];
    for (const set of rrsets(records)) {
      out.push(...set);
      const { name, owner, ttl, type } = set[0];
      const made = KEY_TYPES.has(type) ? (keySigs.get(type) ?? []) : [signer.sign(set, originalTtl !== undefined && originalTtl > ttl ? originalTtl : ttl).rdata];
      for (const rdata of made) out.push({ name, owner, type: DNSSEC_TYPE.RRSIG, ttl, rdata });
    }
    return out;
  }

  function signedBody(body: Body, key: string, signer: Signer, originalTtl?: number, nsec?: Rr): Body {
    const { an, ns, ar } = readBody(body, key);
    const answers = withSigs(an, signer, originalTtl);
    const authority = withSigs(ns, signer);
    if (nsec) authority.push(...withSigs([{ ...nsec, owner: nameWire(nsec.name) }], signer));
    return writeBody(key, answers, authority, ar, body.rcode, body.aa);
  }

  /** The NSEC at a name that exists: its types, the one asked for not among them. */
  function typesAt(node: ZoneNode, qtype: number): number[] {
    const types = new Set([...node.bodies.keys()].filter((t) => t !== TYPE.ANY && node.bodies.get(t) !== node.nodata));
    if (node.dynamic !== undefined) for (const t of [TYPE.A, TYPE.AAAA]) if (t !== qtype) types.add(t);
    return [...types].sort((a, b) => a - b);
  }

  function nodataBody(node: ZoneNode, key: string, qtype: number, signer: Signer): Body {
    const soa = readBody(node.nodata, key).ns;
    const nsec = compactNsec(nameText(key), soa[0]?.ttl ?? 0, typesAt(node, qtype));
    return signedBody(node.nodata, key, signer, undefined, nsec);
  }

  return {
    generation() {
      fresh();
      return generation;
    },
    answer(body, key, originalTtl) {
      fresh();
      let twin = twins.get(body);
      if (!twin) remember(twins, body, (twin = signedBody(body, key, zoneSigner, originalTtl)), MAX_TWINS);
      return twin;
    },
    nodata(node, key, qtype) {
      fresh();
      // A steered name's NSEC depends on the type asked (the other family is listed); a static name's does not.
      const id = node.dynamic !== undefined ? `${key}|${qtype}` : key;
      let body = nodatas.get(id);
      if (!body) remember(nodatas, id, (body = nodataBody(node, key, qtype, zoneSigner)), MAX_TWINS);
      return body;
    },
    synthesized(node, body, key, qtype) {
      fresh();
      const id = `${key}|${qtype}`;
      let out = named.get(id);
      if (!out) remember(named, id, (out = body === node.nodata ? nodataBody(node, key, qtype, perName) : signedBody(body, key, perName)), MAX_PER_NAME);
      return out;
    },
    nxdomain(nx, key, compact) {
      fresh();
      negativeSoa ??= withSigs(readBody(nx, key).ns, zoneSigner);
      const ttl = negativeSoa[0]?.ttl ?? 0;
      // The key is the name lowercased in wire form: canonical already.
      const nsec = nxnameNsec(nameText(key), Buffer.from(key, 'latin1'), ttl);
      if (!nsec) return nx;
      const authority = [...negativeSoa, ...withSigs([nsec as ReadRr], perName)];
      return { ...writeBody(key, [], authority, [], compact ? RCODE.NXDOMAIN : RCODE.NOERROR, true), nx: true };
    },
  };
}

/** Consecutive records of one owner and type, as one RRset each. */
function rrsets(records: readonly ReadRr[]): ReadRr[][] {
  const sets: ReadRr[][] = [];
  const at = new Map<string, ReadRr[]>();
  for (const r of records) {
    const id = `${r.owner.toString('latin1')}|${r.type}`;
    let set = at.get(id);
    if (!set) {
      at.set(id, (set = []));
      sets.push(set);
    }
    set.push(r);
  }
  return sets;
}

/**
 * The sections after a question for `key`: owner names that are the question
 * or one of its parents point into it (as the question is asked, whatever its
 * case); any other is written whole. RDATA is written as read, uncompressed.
 */
function writeBody(key: string, an: readonly ReadRr[], ns: readonly ReadRr[], ar: readonly ReadRr[], rcode: number, aa: boolean): Body {
  const suffixes = new Map<string, number>();
  for (let p = 0; p < key.length - 1; p += key.charCodeAt(p) + 1) suffixes.set(key.slice(p), HEADER_SIZE + p);
  const parts: Buffer[] = [];
  for (const r of [...an, ...ns, ...ar]) {
    const at = suffixes.get(r.owner.toString('latin1'));
    parts.push(recordBytes(r, at === undefined ? undefined : Buffer.from([0xc0 | (at >> 8), at & 0xff])));
  }
  return { bytes: Buffer.concat(parts), an: an.length, ns: ns.length, ar: ar.length, rcode, aa };
}
