import { isIP } from 'node:net';
import type { Config, ServiceDoc, ZoneDoc } from '../config/schema.js';

/**
 * The immutable state every answer is computed from: configuration plus
 * health, flattened for fast reads. Built by control on every change and
 * swapped atomically on DNS nodes; nothing mutates a snapshot once built.
 */
export type Snapshot = {
  /** Increases with every change; also the SOA serial. */
  readonly version: number;
  readonly zone: ZoneDoc;
  readonly regions: readonly RegionState[];
  readonly regionById: ReadonlyMap<string, RegionState>;
  readonly services: ReadonlyMap<string, ServiceDoc>;
  /** Measured RTT (ms) from each probe region to each endpoint region; empty without probe data. */
  readonly latency: LatencyMatrix;
  /**
   * GPU capacity per region id, from balancers' fresh reports as control
   * judged them. A region without an entry is unknown: neither empty nor full.
   */
  readonly capacity: CapacityMap;
};

export type LatencyMatrix = Readonly<Record<string, Readonly<Record<string, number>>>>;

/** One region's capacity, as control decided it from the region's balancer reports. */
export type RegionCapacity = {
  /**
   * 0..1: the share of this region's new clients to send to the next region
   * in rank. Control raises and lowers it with hysteresis; 0 means headroom.
   */
  readonly shed: number;
  /** 0..1, how full the region reported itself, for traces. */
  readonly saturation?: number;
  /** Why, for traces ("4/4 GPUs busy", "queue 37 deep"). */
  readonly reason: string;
};

export type CapacityMap = Readonly<Record<string, RegionCapacity>>;

/** Live health of one endpoint, as control's tracker and admin overrides decided it. */
export type EndpointHealthInput = {
  readonly state: Health;
  readonly reason: string;
  /** Moving toward the other state: answers that include it get a shorter TTL. */
  readonly transition?: boolean;
};

/** Endpoint key used by probes, the tracker and snapshots: `region/zone/address`. */
export const endpointKey = (region: string, zone: string, address: string) => `${region}/${zone}/${address}`;

export type RegionState = {
  readonly id: string;
  readonly name: string;
  readonly lat: number;
  readonly lon: number;
  readonly countries: ReadonlySet<string>;
  readonly zones: readonly ZoneState[];
};

export type ZoneState = {
  readonly id: string;
  readonly endpoints: readonly EndpointState[];
};

export type Health = 'up' | 'down';

export type EndpointState = {
  readonly address: string;
  readonly family: 4 | 6;
  readonly weight: number;
  readonly region: string;
  readonly zone: string;
  /** Effective health: configuration marks and (later) probe results combined. */
  readonly health: Health;
  /** Why the endpoint has this health, for traces. */
  readonly reason: string;
  readonly transition: boolean;
};

/**
 * Build a snapshot from configuration and live health. An endpoint marked
 * `down: true` in configuration (itself, its zone or its region) is down
 * whatever the probes say; otherwise its live health decides, and without
 * live health (no probe results yet, or no control) it is up. Capacity is
 * kept for configured regions only, with `shed` clamped to 0..1 (not a
 * number: 0); without capacity data every region is unknown.
 */
export function buildSnapshot(
  config: Config,
  version: number,
  live: { health?: ReadonlyMap<string, EndpointHealthInput>; latency?: LatencyMatrix; capacity?: CapacityMap } = {},
): Snapshot {
  const regions: RegionState[] = config.regions.map((r) => ({
    id: r.id,
    name: r.name,
    lat: r.location.lat,
    lon: r.location.lon,
    countries: new Set(r.countries),
    zones: r.zones.map((z) => ({
      id: z.id,
      endpoints: z.endpoints.map((e): EndpointState => {
        const marked = r.down ? 'region' : z.down ? 'zone' : e.down ? 'endpoint' : undefined;
        const h = live.health?.get(endpointKey(r.id, z.id, e.address));
        return {
          address: e.address,
          family: isIP(e.address) === 6 ? 6 : 4,
          weight: e.weight,
          region: r.id,
          zone: z.id,
          health: marked ? 'down' : (h?.state ?? 'up'),
          reason: marked ? `${marked} marked down in config` : (h?.reason ?? 'no health data: assumed up'),
          transition: !marked && (h?.transition ?? false),
        };
      }),
    })),
  }));
  return Object.freeze({
    version,
    zone: config.zone,
    regions,
    regionById: new Map(regions.map((r) => [r.id, r])),
    services: new Map(config.zone.services.map((s) => [s.name, s])),
    latency: live.latency ?? {},
    capacity: capacityOf(live.capacity ?? {}, regions),
  });
}

function capacityOf(input: CapacityMap, regions: readonly RegionState[]): CapacityMap {
  const out: Record<string, RegionCapacity> = {};
  for (const r of regions) {
    const c = Object.hasOwn(input, r.id) ? input[r.id] : undefined;
    if (!c) continue;
    const shed = Number.isFinite(c.shed) ? Math.min(1, Math.max(0, c.shed)) : 0;
    out[r.id] = Object.freeze({ ...c, shed });
  }
  return Object.freeze(out);
}
