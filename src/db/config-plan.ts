// What an apply or a region delete would write, decided from the current
// documents alone: the documents that change, the events that record them,
// and the whole configuration validated first. Both engines write the plan,
// SQLite in a transaction of its file and etcd in an etcd transaction.
import type { RegionDoc, ZoneDoc } from '../config/schema.js';
import { canonicalJson, changedFields, regionSubject, ZONE_SUBJECT, type ApplyOptions, type DocumentRules, type Documents } from './documents.js';
import type { NewEvent } from './history.js';

export type CurrentDocuments = { zone: ZoneDoc | undefined; regions: ReadonlyMap<string, RegionDoc> };

export type Plan = {
  /** The zone's settings to write, when they change. */
  zone?: ZoneDoc;
  /** Regions to write (created or changed). */
  put: RegionDoc[];
  /** Regions to delete. */
  remove: string[];
  events: NewEvent[];
  /** Subjects written: `zone-settings`, `region:<id>`. */
  changed: string[];
};

const describe = (what: string, before: object | undefined, after: object, by?: string) =>
  `${what} ${before ? `updated (${changedFields(before, after).join(', ')})` : 'created'}${by ? ` by ${by}` : ''}`;

/** The incoming documents parsed, each region at most once. */
export function parseIncoming(rules: DocumentRules, docs: Documents): { zone?: ZoneDoc; incoming: RegionDoc[] } {
  const zone = docs.zone && rules.parseZone(docs.zone, ZONE_SUBJECT);
  const incoming = docs.regions.map((r) => rules.parseRegion(r, regionSubject(typeof r?.id === 'string' ? r.id : '?')));
  const seen = new Set<string>();
  for (const r of incoming) {
    if (seen.has(r.id)) throw rules.duplicate(regionSubject(r.id), r.id);
    seen.add(r.id);
  }
  return { zone, incoming };
}

/** An apply's plan; throws the rules' error when the result would be invalid. Unchanged documents are skipped. */
export function planApply(current: CurrentDocuments, docs: Documents, o: ApplyOptions, rules: DocumentRules, t: number): Plan {
  const { zone, incoming } = parseIncoming(rules, docs);
  const merged = new Map(current.regions);
  for (const r of incoming) merged.set(r.id, r);
  rules.validate({ zone: zone ?? current.zone, regions: [...merged.values()] });

  const plan: Plan = { put: [], remove: [], events: [], changed: [] };
  const data = (before: object | undefined, after: object) => ({ actor: o.actor ?? null, fields: before ? changedFields(before, after) : null });
  if (zone && (!current.zone || canonicalJson(zone) !== canonicalJson(current.zone))) {
    plan.zone = zone;
    plan.changed.push(ZONE_SUBJECT);
    plan.events.push({
      time: t,
      kind: 'config.applied',
      subject: ZONE_SUBJECT,
      oldState: current.zone ? 'present' : 'absent',
      newState: 'present',
      reason: o.reason ?? describe(`zone settings for ${zone.apex}`, current.zone, zone, o.actor),
      data: data(current.zone, zone),
    });
  }
  for (const r of incoming) {
    const before = current.regions.get(r.id);
    if (before && canonicalJson(before) === canonicalJson(r)) continue;
    plan.put.push(r);
    plan.changed.push(regionSubject(r.id));
    plan.events.push({
      time: t,
      kind: 'config.applied',
      subject: regionSubject(r.id),
      oldState: before ? 'present' : 'absent',
      newState: 'present',
      reason: o.reason ?? describe(`region ${r.id}`, before, r, o.actor),
      region: r.id,
      data: data(before, r),
    });
  }
  return plan;
}

/** A region delete's plan (undefined when there is no such region); with `unlinkServices`, also out of every service's regions. */
export function planDelete(current: CurrentDocuments, id: string, o: ApplyOptions & { unlinkServices?: boolean }, rules: DocumentRules, t: number): Plan | undefined {
  if (!current.regions.has(id)) return undefined;
  const zone = current.zone;
  const rest = [...current.regions.values()].filter((r) => r.id !== id);
  const unlinked =
    zone && o.unlinkServices && zone.services.some((s) => s.regions?.includes(id))
      ? { ...zone, services: zone.services.map((s) => (s.regions ? { ...s, regions: s.regions.filter((r) => r !== id) } : s)) }
      : undefined;
  if (zone) rules.validate({ zone: unlinked ?? zone, regions: rest });
  const plan: Plan = { put: [], remove: [id], events: [], changed: [regionSubject(id)] };
  if (unlinked && zone) {
    plan.zone = unlinked;
    plan.events.push({
      time: t,
      kind: 'config.applied',
      subject: ZONE_SUBJECT,
      oldState: 'present',
      newState: 'present',
      reason: `region ${id} removed from the regions of ${zone.services.filter((s) => s.regions?.includes(id)).map((s) => s.name).join(', ')}${o.actor ? ` by ${o.actor}` : ''}`,
      data: { actor: o.actor ?? null, fields: ['services'] },
    });
  }
  plan.events.push({
    time: t,
    kind: 'config.deleted',
    subject: regionSubject(id),
    oldState: 'present',
    newState: 'absent',
    reason: o.reason ?? `region ${id} deleted${o.actor ? ` by ${o.actor}` : ''}`,
    region: id,
    data: { actor: o.actor ?? null },
  });
  return plan;
}
