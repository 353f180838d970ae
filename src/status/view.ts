import { statusOf, type RegionStatus } from '../control/status.js';
import type { CapacityReport } from '../control/capacity.js';
import { allCountries } from '../geo/countries.js';
import type { AgentStatus } from '../health/tracker.js';
import type { EndpointHealth } from '../health/types.js';
import { endpointKey, type LatencyMatrix, type RegionCapacity, type Snapshot } from '../snapshot/snapshot.js';
import { steer } from '../steer/steer.js';
import type { ClientFacts } from '../steer/types.js';

/** Countries the table always lists (the rest are summed up per region): Southeast Asia. */
export const SOUTHEAST_ASIA = ['BN', 'ID', 'KH', 'LA', 'MM', 'MY', 'PH', 'SG', 'TH', 'TL', 'VN'] as const;

export type EndpointView = {
  address: string;
  state: 'up' | 'down';
  reason: string;
  transition: 'falling' | 'rising' | null;
  /** Fresh probe votes: how many agents see it answering, of how many heard. */
  probes: { ok: number; total: number };
};

export type ZoneView = { id: string; state: 'up' | 'down'; up: number; total: number; endpoints: EndpointView[] };

export type CapacityView = {
  /** Share of new clients sent to the next region in rank, 0..1. */
  shed: number;
  saturation: number | null;
  reason: string;
  /** Summed over the region's balancers with fresh reports. */
  instances: number;
  ready: number;
  outstanding: number;
  freeConcurrency: number;
  queueDepth: number;
  reportedAt: number | null;
};

export type RegionView = {
  id: string;
  name: string;
  lat: number;
  lon: number;
  state: RegionStatus;
  reason: string;
  /** Admin overrides on the region or anything in it. */
  overrides: { subject: string; mode: 'drain' | 'force-up'; reason: string }[];
  zones: ZoneView[];
  /** Whether the agents heard from agree on every endpoint of the region. */
  probes: { agents: number; unanimous: boolean; split: { endpoint: string; ok: number; total: number }[] };
  /** Null when no balancer reports: unknown, not empty. */
  capacity: CapacityView | null;
};

export type CountrySteering = {
  code: string;
  name: string;
  /** The region DNS answers this country's clients from now; null when nothing answers. */
  region: string | null;
  reason: string;
  /** While that region sheds load: the share of its new clients sent elsewhere, and where. */
  shed: { share: number; to: string | null } | null;
};

export type ServiceSteering = {
  service: string;
  policy: string;
  countries: CountrySteering[];
  /** Every other country with coordinates, counted by the region it is steered to. */
  elsewhere: Record<string, number>;
};

export type StatusView = {
  version: number;
  at: number;
  /** No probe agent heard from within the staleness window: health is held, not measured. */
  blind: boolean;
  agents: { id: string; region: string; fresh: boolean; lastSeen: number }[];
  regions: RegionView[];
  steering: ServiceSteering[];
  /** Round-trip time (ms, EWMA) from each probe region (rows) to each region's endpoints (columns). */
  rtt: { from: string[]; to: string[]; ms: LatencyMatrix };
};

export type StatusInput = {
  snapshot: Snapshot;
  endpoint: (key: string) => EndpointHealth | undefined;
  agents: readonly AgentStatus[];
  overrides: readonly { subject: string; mode: 'drain' | 'force-up'; reason: string }[];
  capacity: { regions: Readonly<Record<string, RegionCapacity>>; reports: readonly CapacityReport[] };
  latency: LatencyMatrix;
  now: number;
};

/** What the status page shows, computed from control's state: pure. */
export function statusView(input: StatusInput): StatusView {
  const { snapshot } = input;
  const status = statusOf(snapshot);
  const regions = snapshot.regions.map((r): RegionView => {
    const st = status.regions.get(r.id)!;
    const overrides = input.overrides
      .filter((o) => o.subject === `region:${r.id}` || o.subject.startsWith(`zone:${r.id}/`) || o.subject.startsWith(`endpoint:${r.id}/`))
      .map((o) => ({ subject: o.subject, mode: o.mode, reason: o.reason }));
    const split: RegionView['probes']['split'] = [];
    const agents = new Set<string>();
    const zones = r.zones.map((z): ZoneView => {
      const zs = st.zones.get(z.id)!;
      const endpoints = z.endpoints.map((e): EndpointView => {
        const key = endpointKey(r.id, z.id, e.address);
        const votes = (input.endpoint(key)?.votes ?? []).filter((v) => v.fresh);
        for (const v of votes) agents.add(v.agent);
        const ok = votes.filter((v) => v.ok).length;
        if (ok > 0 && ok < votes.length) split.push({ endpoint: key, ok, total: votes.length });
        return { address: e.address, state: e.health, reason: e.reason, transition: input.endpoint(key)?.transition ?? null, probes: { ok, total: votes.length } };
      });
      return { id: z.id, state: zs.status, up: zs.up, total: zs.total, endpoints };
    });
    return {
      id: r.id,
      name: r.name,
      lat: r.lat,
      lon: r.lon,
      state: st.status,
      reason: regionReason(st.status, zones),
      overrides,
      zones,
      probes: { agents: agents.size, unanimous: split.length === 0, split },
      capacity: capacityOf(r.id, input.capacity),
    };
  });
  const probeRegions = Object.keys(input.latency).sort();
  return {
    version: snapshot.version,
    at: input.now,
    blind: input.agents.length > 0 && input.agents.every((a) => !a.fresh),
    agents: input.agents.map((a) => ({ id: a.id, region: a.region, fresh: a.fresh, lastSeen: a.lastSeen })),
    regions,
    steering: countrySteering(snapshot),
    rtt: { from: probeRegions, to: snapshot.regions.map((r) => r.id), ms: input.latency },
  };
}

function regionReason(state: RegionStatus, zones: readonly ZoneView[]): string {
  if (state === 'up') return `all ${zones.length} zones up`;
  const down = zones.filter((z) => z.state === 'down');
  // The evidence of the first down endpoint of each down zone: the same words as the events.
  const why = down.map((z) => `${z.id}: ${z.endpoints.find((e) => e.state === 'down')?.reason ?? 'down'}`);
  return `${down.length} of ${zones.length} zones down — ${why.join('; ')}`;
}

function capacityOf(region: string, capacity: StatusInput['capacity']): CapacityView | null {
  const reports = capacity.reports.filter((r) => r.region === region);
  const judged = Object.hasOwn(capacity.regions, region) ? capacity.regions[region] : undefined;
  if (reports.length === 0 && !judged) return null;
  const sum = (k: 'instances' | 'ready' | 'outstanding' | 'freeConcurrency' | 'queueDepth') => reports.reduce((n, r) => n + r[k], 0);
  return {
    shed: judged?.shed ?? 0,
    saturation: judged?.saturation ?? null,
    reason: judged?.reason ?? '',
    instances: sum('instances'),
    ready: sum('ready'),
    outstanding: sum('outstanding'),
    freeConcurrency: sum('freeConcurrency'),
    queueDepth: sum('queueDepth'),
    reportedAt: reports.length ? Math.max(...reports.map((r) => r.at)) : null,
  };
}

const names = new Intl.DisplayNames(['en'], { type: 'region', fallback: 'code' });
// As in control's failover report: for location-based policies the region does not depend on the draw.
const firstOf = () => 0.5;
const cache = new WeakMap<Snapshot, ServiceSteering[]>();

/**
 * Where each country's clients are steered now, per service, and why: the
 * country located at its coordinates and run through the same steer() the DNS
 * server runs (as control's failover report does). Capacity is left out of the
 * region (whether one client moves depends on its /24) and reported as the
 * region's shed share instead. The reason compares with the same snapshot
 * with everything up: the region it would prefer, and why it is not that one.
 */
export function countrySteering(snapshot: Snapshot): ServiceSteering[] {
  const hit = cache.get(snapshot);
  if (hit) return hit;
  const noCapacity: Snapshot = { ...snapshot, capacity: {} };
  const ideal = allUp(noCapacity);
  const status = statusOf(snapshot);
  const listed = new Set<string>([...SOUTHEAST_ASIA, ...snapshot.regions.flatMap((r) => [...r.countries])]);
  const out: ServiceSteering[] = [];
  for (const [service, doc] of snapshot.services) {
    const countries: CountrySteering[] = [];
    const elsewhere: Record<string, number> = {};
    for (const [code, location] of allCountries()) {
      const client: ClientFacts = { ip: '0.0.0.0', source: 'resolver', country: code, location, scope: 0, via: `country ${code}` };
      const query = { service, family: 4 as const, client };
      const now = steer(query, noCapacity, firstOf);
      const region = now.answers.length > 0 ? (now.region ?? null) : null;
      if (!listed.has(code)) {
        const key = region ?? 'none';
        elsewhere[key] = (elsewhere[key] ?? 0) + 1;
        continue;
      }
      const preferred = steer(query, ideal, firstOf).region;
      const reason = doc.policy === 'weighted' ? 'weighted: every client shares the regions by weight' : reasonOf(now, preferred, status);
      const own = region !== null && Object.hasOwn(snapshot.capacity, region) ? snapshot.capacity[region] : undefined;
      const shed = own && own.shed > 0 ? { share: own.shed, to: shedTarget(steer(query, snapshot, firstOf).trace) } : null;
      countries.push({ code, name: names.of(code) ?? code, region, reason, shed });
    }
    countries.sort((a, b) => a.name.localeCompare(b.name, 'en'));
    out.push({ service, policy: doc.policy, countries, elsewhere });
  }
  cache.set(snapshot, out);
  return out;
}

function reasonOf(d: ReturnType<typeof steer>, preferred: string | undefined, status: ReturnType<typeof statusOf>): string {
  if (d.answers.length === 0) return d.trace.find((t) => t.startsWith('up: nothing healthy')) ? 'nothing healthy and the service fails closed: no answer' : 'no region serves it';
  const detail = rankDetail(d.trace, d.region!);
  if (d.failedOpen) return `nothing healthy: failing open to the first in rank${detail ? ` (${detail})` : ''}`;
  if (preferred === undefined || preferred === d.region) return plain(detail) ?? 'first in rank';
  return `${preferred} ${status.regions.get(preferred)?.status ?? 'down'} → next in rank${detail ? ` (${detail})` : ''}`;
}

/** A ranking note in words: "1931 km" is the nearest region, "12.3 ms" the lowest RTT; "home of ID, 1462 km" says itself. */
function plain(detail: string | undefined): string | undefined {
  if (detail === undefined) return undefined;
  if (/^\d+ km$/.test(detail)) return `nearest, ${detail}`;
  if (/^[\d.]+ ms$/.test(detail)) return `lowest RTT, ${detail}`;
  return detail;
}

/** The ranking step's note on one region: "home of ID, 1462 km", "1931 km", "priority 2", "12.3 ms". */
export function rankDetail(trace: readonly string[], region: string): string | undefined {
  const line = [...trace].reverse().find((t) => t.startsWith('rank '));
  const m = line && new RegExp(`(?:: | > )${region} \\(([^)]*)\\)`).exec(line);
  return m ? m[1] : undefined;
}

/** Where a shedding region's clients go, from the capacity step's note; null when no region has headroom. */
export function shedTarget(trace: readonly string[]): string | null {
  const line = trace.find((t) => t.startsWith('capacity: '));
  const m = line && (/shed clients go to ([a-z0-9-]+)/.exec(line) ?? / → ([a-z0-9-]+)(?: \(|$)/.exec(line));
  return m ? m[1] : null;
}

/** The snapshot with every endpoint up: where clients would go if nothing were broken or drained. */
function allUp(s: Snapshot): Snapshot {
  const regions = s.regions.map((r) => ({ ...r, zones: r.zones.map((z) => ({ ...z, endpoints: z.endpoints.map((e) => ({ ...e, health: 'up' as const, transition: false })) })) }));
  return { ...s, regions, regionById: new Map(regions.map((r) => [r.id, r])) };
}
