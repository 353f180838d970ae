// Static records in the zone's settings (`records:` in zone.yaml, and
// /v1/records): one entry per RRset, its values parsed by record-values.ts.
// What one entry can check is here (recordSchema); what needs the zone (the
// apex, the services, the name servers, the other entries) is checkRecords,
// and the pinned service names (which need the regions) pinnedCollisions.

import { z } from 'zod';
import { DEFAULT_RECORD_TTL, ownerName, parseRecordValue, RECORD_TYPES, type RecordType } from './record-values.js';

/** An RRset's values take at most this many octets (with their owner, type, class, TTL): a DNS message must hold them. */
export const MAX_RRSET_OCTETS = 64_000;
/** Values in one RRset. */
export const MAX_RRSET_VALUES = 256;

const recordType = z
  .string()
  .transform((s) => s.toUpperCase())
  .pipe(z.enum(RECORD_TYPES, { error: `must be one of ${RECORD_TYPES.join(', ')}` }));

/**
 * The fields of one entry. `value` is shorthand for `values` of one: the
 * parsed entry always has `values`.
 */
export const recordFields = z.strictObject({
  /** Relative to the apex (`www`, `_acme-challenge`, `*.dev`), `@` for the apex, or absolute with a final dot. */
  name: z.string().min(1).max(255).transform((s) => s.trim().toLowerCase()),
  type: recordType,
  ttl: z.number().int().min(0).max(604_800).default(DEFAULT_RECORD_TTL),
  value: z.string().optional(),
  values: z.array(z.string()).min(1, 'an RRset needs at least one value').max(MAX_RRSET_VALUES).optional(),
});

type RecordFields = z.infer<typeof recordFields>;

/** Checks one entry's values for its type: each parses, none twice, one value or several but not both. */
export function checkValues(r: Pick<RecordFields, 'type' | 'value' | 'values'>, ctx: z.RefinementCtx): void {
  if (r.value !== undefined && r.values !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['value'], message: 'give value (one) or values (several), not both' });
    return;
  }
  if (r.value === undefined && r.values === undefined) {
    ctx.addIssue({ code: 'custom', path: ['values'], message: 'is required (or value, for one)' });
    return;
  }
  const list = r.values ?? [r.value!];
  const path = (i: number) => (r.values ? ['values', i] : ['value']);
  if (r.type === 'CNAME' && list.length > 1) ctx.addIssue({ code: 'custom', path: ['values'], message: 'a CNAME RRset holds one record (RFC 2181 §10.1)' });
  const seen = new Map<string, number>();
  list.forEach((text, i) => {
    const parsed = parseRecordValue(r.type, text);
    if ('error' in parsed) return ctx.addIssue({ code: 'custom', path: path(i), message: parsed.error });
    const first = seen.get(parsed.key);
    if (first !== undefined) ctx.addIssue({ code: 'custom', path: path(i), message: `the same value as values[${first}]: an RRset holds each record once` });
    else seen.set(parsed.key, i);
  });
}

export const recordSchema = recordFields
  .superRefine((r, ctx) => checkValues(r, ctx))
  .transform(({ value, values, ...rest }) => ({ ...rest, values: values ?? [value!] }));

export type RecordDoc = z.infer<typeof recordSchema>;
export type RecordInput = z.input<typeof recordSchema>;

/** What checkRecords needs of the zone. */
type ZoneNames = {
  apex: string;
  nameservers: readonly { name: string }[];
  services: readonly { name: string; regions?: readonly string[] }[];
  records?: readonly RecordDoc[];
};

/** `records[i]`'s owner as an absolute name, or undefined when it is not a valid one (reported by checkRecords). */
export function recordOwner(r: Pick<RecordDoc, 'name'>, apex: string): string | undefined {
  const o = ownerName(r.name, apex);
  return 'name' in o ? o.name : undefined;
}

/**
 * The checks an entry needs the zone for: the owner inside the zone and not
 * a service's or a name server's name; no CNAME at the apex or beside other
 * data (RFC 1034 §3.6.2, RFC 2181 §10.1); one entry per RRset; an RRset that
 * fits in a DNS message.
 */
export function checkRecords(zone: ZoneNames, ctx: z.RefinementCtx): void {
  const apex = zone.apex;
  const services = new Map(zone.services.map((s) => [`${s.name}.${apex}`, s.name]));
  const servers = new Set(zone.nameservers.map((n) => n.name));
  const byName = new Map<string, { type: RecordType; i: number }[]>();
  (zone.records ?? []).forEach((r, i) => {
    // zod runs this check even when an entry failed its own (reported there): skip what is not an entry yet.
    if (typeof r?.name !== 'string' || !RECORD_TYPES.includes(r.type) || !Array.isArray(r.values)) return;
    const owner = ownerName(r.name, apex);
    if ('error' in owner) return ctx.addIssue({ code: 'custom', path: ['records', i, 'name'], message: owner.error });
    const name = owner.name;
    const at = (message: string, field: PropertyKey[] = ['name']) => ctx.addIssue({ code: 'custom', path: ['records', i, ...field], message });
    if (services.has(name)) at(`${name} is the name of service ${services.get(name)}: steer() answers it`);
    if (servers.has(name) && (r.type === 'A' || r.type === 'AAAA' || r.type === 'CNAME')) at(`${name} is a name server's name: its addresses are the glue in nameservers`);
    if (r.type === 'CNAME' && name === apex) at('a CNAME cannot be at the apex: the apex has the SOA and NS records (RFC 1034 §3.6.2); use A/AAAA', ['type']);
    const same = byName.get(name) ?? [];
    const twin = same.find((x) => x.type === r.type);
    if (twin) at(`records[${twin.i}] is the same RRset (${name} ${r.type}): list every value in one entry`);
    const clash = same.find((x) => (x.type === 'CNAME') !== (r.type === 'CNAME'));
    if (clash && !twin) at(`a CNAME cannot be beside other data (RFC 2181 §10.1): ${name} also has ${clash.type} in records[${clash.i}]`, ['type']);
    same.push({ type: r.type, i });
    byName.set(name, same);
    let octets = 0;
    for (const text of r.values) {
      const v = parseRecordValue(r.type, text, apex);
      // Owner (a pointer to the question), type, class, TTL and RDLENGTH, then the RDATA. A bad value is the entry's own error.
      if (!('error' in v)) octets += 12 + v.rdataLength;
    }
    if (octets > MAX_RRSET_OCTETS) at(`the RRset takes ${octets} octets, more than a DNS message holds (${MAX_RRSET_OCTETS})`, ['values']);
  });
}

/**
 * Entries at a pinned service name (`<region>.<service>.<apex>`, for each
 * region the service may use): a check across documents, as it needs the
 * regions. Lines as crossCheck returns them (`zone.records[i].name: …`).
 */
export function pinnedCollisions(zone: ZoneNames, regionIds: readonly string[]): string[] {
  const pinned = new Map<string, string>();
  for (const s of zone.services) for (const r of s.regions ?? regionIds) pinned.set(`${r}.${s.name}.${zone.apex}`, `${s.name} in region ${r}`);
  const errors: string[] = [];
  (zone.records ?? []).forEach((r, i) => {
    const name = typeof r?.name === 'string' ? recordOwner(r, zone.apex) : undefined;
    const what = name && pinned.get(name);
    if (what) errors.push(`zone.records[${i}].name: ${name} is the pinned name of service ${what}: steer() answers it`);
  });
  return errors;
}
