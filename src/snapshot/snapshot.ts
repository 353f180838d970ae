import { isIP } from 'node:net';
import type { SigningKey } from '../dnssec/keys.js';
import { endpointName, type Config, type EndpointDoc, type ServiceDoc, type ZoneDoc } from '../config/schema.js';

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
  /** What control's resolver found for each hostname endpoint's name; empty without hostname endpoints. */
  readonly resolved: ResolvedMap;
  /** The zone is signed: its keys as control publishes them; absent for an unsigned zone. */
  readonly dnssec?: ZoneSigning;
};

/**
 * A signed zone (src/dnssec/), as control publishes it. Control keeps the
 * KSKs and signs the apex's key RRsets with them; a DNS node signs the rest
 * with the ZSK, which only the snapshots of nodes authorised to sign carry.
 */
export type ZoneSigning = {
  /** DNSKEY, CDS and CDNSKEY at the apex: records (canonical RDATA) and control's RRSIGs over them (RDATA). */
  readonly keyRrsets: readonly KeyRrset[];
  /** The active ZSK with its private key, where this snapshot may sign; absent where it may not. */
  readonly zsk?: SigningKey;
};
export type KeyRrset = { readonly type: number; readonly ttl: number; readonly rdata: readonly Buffer[]; readonly rrsigs: readonly Buffer[] };

/**
 * A hostname endpoint's name as control's resolver last found it: its
 * addresses (A and AAAA) with the lowest of their TTLs, or why it does not
 * resolve (NXDOMAIN, no address, the resolver failing past the stale window).
 */
export type HostnameResolution = { readonly addresses: readonly string[]; readonly ttl: number } | { readonly error: string };
export type ResolvedMap = Readonly<Record<string, HostnameResolution>>;

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
  /** Its address, or a hostname endpoint's hostname: the endpoint's name in keys, traces and overrides. */
  readonly address: string;
  /** An address, a hostname answered as a CNAME, or a hostname flattened into its addresses. */
  readonly kind: 'address' | 'cname' | 'flatten';
  /** The address families it can answer: its address's; a CNAME's both; a flattened name's those it resolved to. */
  readonly families: readonly (4 | 6)[];
  /** A hostname endpoint without `flatten`: answered as a CNAME to this name. */
  readonly cname?: string;
  /** The A/AAAA records it answers: its address, or a flattened hostname's resolved addresses (none for a CNAME). */
  readonly addresses: readonly string[];
  /** A flattened hostname's records' TTL: answers with its addresses never outlive it. */
  readonly addressTtl?: number;
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
  live: { health?: ReadonlyMap<string, EndpointHealthInput>; latency?: LatencyMatrix; capacity?: CapacityMap; resolved?: ResolvedMap; dnssec?: ZoneSigning } = {},
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
        const h = live.health?.get(endpointKey(r.id, z.id, endpointName(e)));
        const named = e.hostname !== undefined ? hostnameState(e, live.resolved?.[e.hostname]) : undefined;
        const down = marked ? `${marked} marked down in config` : named?.down;
        return {
          ...(named?.answers ?? { address: e.address!, kind: 'address', families: [isIP(e.address!) === 6 ? 6 : 4], addresses: [e.address!] }),
          weight: e.weight,
          region: r.id,
          zone: z.id,
          health: down ? 'down' : (h?.state ?? 'up'),
          reason: down ?? h?.reason ?? 'no health data: assumed up',
          transition: !down && (h?.transition ?? false),
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
    resolved: resolvedOf(config, live.resolved ?? {}),
    ...(live.dnssec ? { dnssec: live.dnssec } : {}),
  });
}

type Named = { answers: Pick<EndpointState, 'address' | 'kind' | 'families' | 'cname' | 'addresses' | 'addressTtl'>; down?: string };

/**
 * A hostname endpoint from its resolution: down when its name does not
 * resolve (either kind), or, flattened, before it first resolved (a CNAME
 * needs no addresses of its own, so it waits for the probes).
 */
function hostnameState(e: EndpointDoc, res: HostnameResolution | undefined): Named {
  const name = e.hostname!;
  const base = { address: name, kind: e.flatten ? ('flatten' as const) : ('cname' as const) };
  if (res && 'error' in res) return { answers: { ...base, families: e.flatten ? [] : [4, 6], addresses: [] }, down: `hostname ${name} does not resolve: ${res.error}` };
  if (!e.flatten) return { answers: { ...base, families: [4, 6], cname: name, addresses: [] } };
  if (!res) return { answers: { ...base, families: [], addresses: [] }, down: `hostname ${name} not resolved yet` };
  const families = ([4, 6] as const).filter((f) => res.addresses.some((a) => isIP(a) === f));
  return { answers: { ...base, families, addresses: res.addresses, addressTtl: res.ttl } };
}

/** The resolutions of the configured hostnames only. */
function resolvedOf(config: Config, input: ResolvedMap): ResolvedMap {
  const out: Record<string, HostnameResolution> = {};
  for (const r of config.regions)
    for (const z of r.zones)
      for (const e of z.endpoints) if (e.hostname !== undefined && Object.hasOwn(input, e.hostname)) out[e.hostname] = input[e.hostname];
  return Object.freeze(out);
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
