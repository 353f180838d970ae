import { endpointKey, type EndpointState, type Snapshot } from '../snapshot/snapshot.js';

export type ZoneStatus = 'up' | 'down';
export type RegionStatus = 'up' | 'degraded' | 'down';

export type Status = {
  regions: Map<string, { status: RegionStatus; zones: Map<string, { status: ZoneStatus; up: number; total: number }> }>;
};

/** A zone is down when all its endpoints are; a region is down when all its zones are, degraded when some are. */
export function statusOf(snapshot: Snapshot): Status {
  const regions: Status['regions'] = new Map();
  for (const r of snapshot.regions) {
    const zones = new Map<string, { status: ZoneStatus; up: number; total: number }>();
    for (const z of r.zones) {
      const up = z.endpoints.filter((e) => e.health === 'up').length;
      zones.set(z.id, { status: up > 0 ? 'up' : 'down', up, total: z.endpoints.length });
    }
    const down = [...zones.values()].filter((z) => z.status === 'down').length;
    regions.set(r.id, { status: down === 0 ? 'up' : down === zones.size ? 'down' : 'degraded', zones });
  }
  return { regions };
}

export type StatusChange = {
  kind: 'zone.down' | 'zone.up' | 'region.down' | 'region.up' | 'region.degraded';
  subject: string;
  region: string;
  oldState: string;
  newState: string;
  reason: string;
};

/** Zone and region transitions between two snapshots (regions added or removed are config events, not these). */
export function statusChanges(before: Status, after: Status): StatusChange[] {
  const out: StatusChange[] = [];
  for (const [id, now] of after.regions) {
    const was = before.regions.get(id);
    if (!was) continue;
    for (const [zid, z] of now.zones) {
      const wz = was.zones.get(zid);
      if (!wz || wz.status === z.status) continue;
      out.push({
        kind: z.status === 'down' ? 'zone.down' : 'zone.up',
        subject: `zone:${id}/${zid}`,
        region: id,
        oldState: wz.status,
        newState: z.status,
        reason: z.status === 'down' ? `zone ${zid}: all ${z.total} endpoints down` : `zone ${zid}: ${z.up} of ${z.total} endpoints up`,
      });
    }
    if (was.status !== now.status) {
      const downZones = [...now.zones].filter(([, z]) => z.status === 'down').map(([zid]) => zid);
      out.push({
        kind: `region.${now.status}`,
        subject: `region:${id}`,
        region: id,
        oldState: was.status,
        newState: now.status,
        reason:
          now.status === 'up'
            ? `region ${id}: all ${now.zones.size} zones up`
            : `region ${id}: ${downZones.length} of ${now.zones.size} zones down (${downZones.join(', ')})`,
      });
    }
  }
  return out;
}

/** A hostname endpoint its name leaves down: the name does not resolve (or, flattened, has not yet), as the snapshot's resolutions say. */
const downByName = (s: Snapshot, e: EndpointState | undefined) =>
  e !== undefined && e.kind !== 'address' && e.health === 'down' && (Object.hasOwn(s.resolved, e.address) ? 'error' in s.resolved[e.address] : e.kind === 'flatten');

/** Hostname endpoints that went down because their name stopped resolving, or came back up when it resolved again. */
export function hostnameChanges(before: Snapshot, after: Snapshot): { kind: 'endpoint.down' | 'endpoint.up'; subject: string; region: string; oldState: string; newState: string; reason: string }[] {
  const was = new Map(before.regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints.map((e) => [endpointKey(r.id, z.id, e.address), e] as const))));
  const out = [];
  for (const r of after.regions)
    for (const z of r.zones)
      for (const e of z.endpoints) {
        const key = endpointKey(r.id, z.id, e.address);
        const old = was.get(key);
        if (!old || old.health === e.health) continue;
        if (downByName(after, e)) out.push({ kind: 'endpoint.down' as const, subject: key, region: r.id, oldState: 'up', newState: 'down', reason: e.reason });
        else if (downByName(before, old) && e.health === 'up') out.push({ kind: 'endpoint.up' as const, subject: key, region: r.id, oldState: 'down', newState: 'up', reason: `hostname ${e.address} resolves again` });
      }
  return out;
}
