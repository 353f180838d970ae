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
};

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
};

/**
 * Build a snapshot from configuration. In this version health comes from
 * configuration alone: every endpoint is up unless it, its zone or its region
 * is marked `down: true`.
 */
export function buildSnapshot(config: Config, version: number): Snapshot {
  const regions: RegionState[] = config.regions.map((r) => ({
    id: r.id,
    name: r.name,
    lat: r.location.lat,
    lon: r.location.lon,
    countries: new Set(r.countries),
    zones: r.zones.map((z) => ({
      id: z.id,
      endpoints: z.endpoints.map((e): EndpointState => {
        const reason = r.down
          ? 'region marked down in config'
          : z.down
            ? 'zone marked down in config'
            : e.down
              ? 'endpoint marked down in config'
              : 'up (no health data yet: assumed up)';
        return {
          address: e.address,
          family: isIP(e.address) === 6 ? 6 : 4,
          weight: e.weight,
          region: r.id,
          zone: z.id,
          health: r.down || z.down || e.down ? 'down' : 'up',
          reason,
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
  });
}
