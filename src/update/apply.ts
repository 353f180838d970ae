// An UPDATE's prerequisites (RFC 2136 §3.2) checked against the zone as it is,
// and its updates (§3.4) applied to a copy of the zone's `records:`: the new
// list, or the rcode that refuses the whole message. Pure: the caller checks
// the new zone with the zone's rules and writes it (all or nothing).
import { ownerName, parseRecordValue, RECORD_TYPE_CODE, RECORD_TYPES, type RecordType } from '../config/record-values.js';
import { recordOwner, type RecordDoc } from '../config/records.js';
import type { ZoneDoc } from '../config/schema.js';
import type { AllowPattern } from '../db/tsig-keys.js';
import { allows } from './allow.js';
import { CLASS, rdataText, T, type Rr } from './message.js';

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, YXDOMAIN: 6, YXRRSET: 7, NXRRSET: 8, NOTAUTH: 9, NOTZONE: 10 } as const;

export type Outcome =
  | { rcode: 0; records: RecordDoc[]; changed: string[] }
  | { rcode: number; reason: string };

const TYPE_OF = new Map<number, RecordType>(RECORD_TYPES.map((t) => [RECORD_TYPE_CODE[t], t]));
/** Types an update may never name (RFC 2136 §3.4.1.2): meta and query types. */
const META = new Set([T.ANY, T.TSIG, T.OPT, 252, 253, 254, 249, 251]);

const within = (name: string, apex: string) => name === apex || name.endsWith(`.${apex}`);
const spelled = (owner: string, apex: string) => (owner === apex ? '@' : owner.slice(0, -apex.length - 1));
const keyOf = (type: RecordType, text: string, apex: string) => {
  const v = parseRecordValue(type, text, apex);
  return 'error' in v ? text : v.key;
};

type Rrset = { name: string; owner: string; type: RecordType; ttl: number; values: string[] };

/** The zone's names that are not records': the apex (SOA, NS), each service and pinned name, each name server's. */
function zoneNames(zone: ZoneDoc, regionIds: readonly string[]) {
  const services = new Set(zone.services.map((s) => `${s.name}.${zone.apex}`));
  const pinned = new Set(zone.services.flatMap((s) => (s.regions ?? regionIds).map((r) => `${r}.${s.name}.${zone.apex}`)));
  const servers = new Set(zone.nameservers.map((n) => n.name));
  return { services, pinned, servers, steered: (n: string) => services.has(n) || pinned.has(n) };
}

/** Checks the prerequisites; the rcode that fails the message, or undefined when they all hold. */
function prerequisites(msg: Buffer, prereq: readonly Rr[], zone: ZoneDoc, sets: Rrset[], regionIds: readonly string[]): { rcode: number; reason: string } | undefined {
  const names = zoneNames(zone, regionIds);
  const { apex } = zone;
  const typesAt = (n: string): Set<number> => {
    const t = new Set(sets.filter((s) => s.owner === n).map((s) => RECORD_TYPE_CODE[s.type]));
    if (n === apex) [T.SOA, T.NS].forEach((x) => t.add(x));
    if (names.steered(n)) [T.A, T.AAAA].forEach((x) => t.add(x));
    if (names.servers.has(n)) [T.A, T.AAAA].forEach((x) => t.add(x));
    return t;
  };
  const valueSets = new Map<string, Set<string>>();
  for (const p of prereq) {
    if (!within(p.name, apex)) return { rcode: RCODE.NOTZONE, reason: `prerequisite ${p.name} is outside the zone` };
    if (p.ttl !== 0) return { rcode: RCODE.FORMERR, reason: 'a prerequisite has a TTL' };
    const at = typesAt(p.name);
    if (p.class === CLASS.ANY || p.class === CLASS.NONE) {
      if (p.rdata.length !== 0) return { rcode: RCODE.FORMERR, reason: 'a prerequisite of class ANY or NONE has RDATA' };
      const exists = p.type === T.ANY ? at.size > 0 : at.has(p.type);
      if (p.class === CLASS.ANY && !exists) return { rcode: p.type === T.ANY ? RCODE.NXDOMAIN : RCODE.NXRRSET, reason: `prerequisite: ${p.name} ${p.type === T.ANY ? 'is not in use' : `has no RRset of type ${p.type}`}` };
      if (p.class === CLASS.NONE && exists) return { rcode: p.type === T.ANY ? RCODE.YXDOMAIN : RCODE.YXRRSET, reason: `prerequisite: ${p.name} ${p.type === T.ANY ? 'is in use' : `has an RRset of type ${p.type}`}` };
    } else if (p.class === CLASS.IN) {
      const type = TYPE_OF.get(p.type);
      const text = type && rdataText(msg, p);
      if (!type || text === undefined) return { rcode: RCODE.NXRRSET, reason: `prerequisite: ${p.name} type ${p.type} is not an RRset of static records` };
      const k = `${p.name}|${type}`;
      valueSets.set(k, (valueSets.get(k) ?? new Set()).add(keyOf(type, text, apex)));
    } else return { rcode: RCODE.FORMERR, reason: `a prerequisite of class ${p.class}` };
  }
  // Value-dependent (§2.4.2): the RRset is exactly the records given.
  for (const [k, want] of valueSets) {
    const [owner, type] = k.split('|') as [string, RecordType];
    const set = sets.find((s) => s.owner === owner && s.type === type);
    const have = new Set(set?.values.map((v) => keyOf(type, v, apex)) ?? []);
    if (have.size !== want.size || [...want].some((v) => !have.has(v))) return { rcode: RCODE.NXRRSET, reason: `prerequisite: ${owner} ${type} is not the RRset given` };
  }
  return undefined;
}

/** §3.4.1: every update is of a form the RFC allows, inside the zone, of a type Arus stores, and allowed to the key. */
function prescan(u: Rr, zone: ZoneDoc, sets: Rrset[], allow: readonly AllowPattern[], regionIds: readonly string[]): { rcode: number; reason: string } | undefined {
  const { apex } = zone;
  if (!within(u.name, apex)) return { rcode: RCODE.NOTZONE, reason: `${u.name} is outside the zone ${apex}` };
  if (u.class === CLASS.IN) {
    if (META.has(u.type)) return { rcode: RCODE.FORMERR, reason: `type ${u.type} cannot be added` };
  } else if (u.class === CLASS.ANY) {
    if (u.ttl !== 0 || u.rdata.length !== 0 || (META.has(u.type) && u.type !== T.ANY)) return { rcode: RCODE.FORMERR, reason: 'a delete of class ANY has a TTL, RDATA or a meta type' };
  } else if (u.class === CLASS.NONE) {
    if (u.ttl !== 0 || META.has(u.type)) return { rcode: RCODE.FORMERR, reason: 'a delete of class NONE has a TTL or a meta type' };
  } else return { rcode: RCODE.FORMERR, reason: `an update of class ${u.class}` };
  const names = zoneNames(zone, regionIds);
  if (names.steered(u.name)) return { rcode: RCODE.REFUSED, reason: `${u.name} is a service's name: steer() answers it, not records` };
  // A name server's addresses are the delegation's glue (the zone's nameservers:), the same at the parent: not an update's to change.
  if (names.servers.has(u.name) && (u.type === T.A || u.type === T.AAAA || u.type === T.ANY || u.type === T.CNAME))
    return { rcode: RCODE.REFUSED, reason: `${u.name} is a name server of the zone: its addresses are the glue in nameservers:, changed there and at the parent` };
  if (u.type === T.ANY) {
    const at = sets.filter((s) => s.owner === u.name);
    const ok = at.length ? at.every((s) => allows(allow, s.type, u.name, apex)) : RECORD_TYPES.some((t) => allows(allow, t, u.name, apex));
    return ok ? undefined : { rcode: RCODE.REFUSED, reason: `the key may not delete every RRset at ${u.name}` };
  }
  const type = TYPE_OF.get(u.type);
  if (!type) return { rcode: RCODE.REFUSED, reason: `type ${u.type} at ${u.name} is not a static record type (${RECORD_TYPES.join(', ')}): SOA and NS are the zone's own` };
  if (!allows(allow, type, u.name, apex)) return { rcode: RCODE.REFUSED, reason: `the key may not change ${u.name} ${type}` };
  if (!('name' in ownerName(`${u.name}.`, apex))) return { rcode: RCODE.REFUSED, reason: `${u.name} is not a name records may have` };
  return undefined;
}

/**
 * The zone's records after the message's updates, or the rcode that refuses it. `changed`
 * lists the RRsets (`owner TYPE`) that changed; empty when the updates change nothing.
 */
export function applyUpdate(
  msg: Buffer,
  o: { zone: ZoneDoc; prereq: readonly Rr[]; updates: readonly Rr[]; allow: readonly AllowPattern[]; regionIds: readonly string[] },
): Outcome {
  const { zone } = o;
  const { apex } = zone;
  const sets: Rrset[] = (zone.records ?? []).map((r) => ({ name: r.name, owner: recordOwner(r, apex) ?? r.name, type: r.type, ttl: r.ttl, values: [...r.values] }));
  const failed = prerequisites(msg, o.prereq, zone, sets, o.regionIds);
  if (failed) return failed;
  for (const u of o.updates) {
    const bad = prescan(u, zone, sets, o.allow, o.regionIds);
    if (bad) return bad;
  }
  const changed = new Set<string>();
  const find = (owner: string, type: RecordType) => sets.find((s) => s.owner === owner && s.type === type);
  const drop = (s: Rrset) => {
    sets.splice(sets.indexOf(s), 1);
    changed.add(`${s.owner} ${s.type}`);
  };
  for (const u of o.updates) {
    const type = TYPE_OF.get(u.type);
    if (u.class === CLASS.ANY && u.type === T.ANY) {
      for (const s of sets.filter((x) => x.owner === u.name)) drop(s);
      continue;
    }
    if (!type) continue;
    const set = find(u.name, type);
    if (u.class === CLASS.ANY) {
      if (set) drop(set);
      continue;
    }
    const text = rdataText(msg, u);
    if (text === undefined) return { rcode: RCODE.FORMERR, reason: `the RDATA of ${u.name} ${type} does not read` };
    const key = keyOf(type, text, apex);
    if (u.class === CLASS.NONE) {
      const i = set ? set.values.findIndex((v) => keyOf(type, v, apex) === key) : -1;
      if (set && i >= 0) {
        set.values.splice(i, 1);
        changed.add(`${u.name} ${type}`);
        if (set.values.length === 0) drop(set);
      }
      continue;
    }
    // An add (§3.4.2.2): a CNAME replaces the CNAME; a record already there is not added twice; the TTL is the RRset's.
    if (!set) sets.push({ name: spelled(u.name, apex), owner: u.name, type, ttl: u.ttl, values: [text] });
    else if (type === 'CNAME') Object.assign(set, { values: [text], ttl: u.ttl });
    else if (set.values.some((v) => keyOf(type, v, apex) === key) && set.ttl === u.ttl) continue;
    else {
      if (!set.values.some((v) => keyOf(type, v, apex) === key)) set.values.push(text);
      set.ttl = u.ttl;
    }
    changed.add(`${u.name} ${type}`);
  }
  return { rcode: 0, records: sets.map(({ name, type, ttl, values }) => ({ name, type, ttl, values })), changed: [...changed] };
}
