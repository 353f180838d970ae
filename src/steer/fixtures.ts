// Test fixtures for steering: small configurations built through the real schemas.
import { regionSchema, zoneSchema, type RegionInput, type ServiceDoc } from '../config/schema.js';
import { buildSnapshot, type CapacityMap, type EndpointHealthInput, type LatencyMatrix, type Snapshot } from '../snapshot/snapshot.js';
import type { ClientFacts, SteerQuery } from './types.js';

export const SEA: Record<string, { name: string; lat: number; lon: number; country: string }> = {
  sg: { name: 'Singapore', lat: 1.3521, lon: 103.8198, country: 'SG' },
  jkt: { name: 'Jakarta', lat: -6.2088, lon: 106.8456, country: 'ID' },
  bkk: { name: 'Bangkok', lat: 13.7563, lon: 100.5018, country: 'TH' },
  mnl: { name: 'Manila', lat: 14.5995, lon: 120.9842, country: 'PH' },
};

/** Country centroids as the geo step would report them (world-countries). */
export const COUNTRY_AT: Record<string, { lat: number; lon: number }> = {
  MY: { lat: 2.5, lon: 112.5 },
  VN: { lat: 16.16666666, lon: 107.83333333 },
  ID: { lat: -5, lon: 120 },
  AU: { lat: -27, lon: 133 },
  JP: { lat: 36, lon: 138 },
};

type Marks = { regionDown?: boolean; zonesDown?: string[]; endpointsDown?: string[]; noV6?: boolean; weights?: Record<string, number> };

export function region(id: string, marks: Marks = {}): RegionInput {
  const r = SEA[id];
  const n = Object.keys(SEA).indexOf(id) + 1;
  const ep = (i: number) => [
    { address: `203.0.113.${n}${i}`, weight: marks.weights?.[`203.0.113.${n}${i}`] ?? 100, down: marks.endpointsDown?.includes(`203.0.113.${n}${i}`) },
    ...(marks.noV6 ? [] : [{ address: `2001:db8::${n}${i}` }]),
  ];
  return {
    id,
    name: r.name,
    location: { lat: r.lat, lon: r.lon },
    countries: [r.country],
    down: marks.regionDown,
    zones: [
      { id: `${id}-a`, down: marks.zonesDown?.includes(`${id}-a`), endpoints: ep(1) },
      { id: `${id}-b`, down: marks.zonesDown?.includes(`${id}-b`), endpoints: ep(2) },
    ],
  };
}

export function snapshotOf(
  opts: {
    marks?: Record<string, Marks>;
    service?: Partial<ServiceDoc>;
    defaultRegion?: string;
    version?: number;
    health?: ReadonlyMap<string, EndpointHealthInput>;
    latency?: LatencyMatrix;
    capacity?: CapacityMap;
  } = {},
): Snapshot {
  const zone = zoneSchema.parse({
    apex: 'gslb.example.com',
    nameservers: [{ name: 'ns1.gslb.example.com', addresses: ['192.0.2.53'] }],
    soa: { rname: 'hostmaster.example.com' },
    services: [{ name: 'api', ...opts.service }],
    defaultRegion: opts.defaultRegion ?? 'sg',
  });
  const regions = Object.keys(SEA).map((id) => regionSchema.parse(region(id, opts.marks?.[id])));
  return buildSnapshot({ zone, regions }, opts.version ?? 1, { health: opts.health, latency: opts.latency, capacity: opts.capacity });
}

export function client(facts: Partial<ClientFacts> & { country?: string } = {}): ClientFacts {
  const location = facts.location ?? (facts.country ? (COUNTRY_AT[facts.country] ?? countryOfRegion(facts.country)) : undefined);
  return { ip: '198.51.100.0', source: 'ecs', scope: 24, via: 'test', ...facts, location };
}

function countryOfRegion(cc: string) {
  const r = Object.values(SEA).find((s) => s.country === cc);
  return r ? { lat: r.lat, lon: r.lon } : undefined;
}

/** A capacity report as control would publish it: `shed(0.3)` sheds 30%. */
export function shed(share: number, saturation?: number, reason = 'test'): CapacityMap[string] {
  return { shed: share, saturation, reason };
}

/** `n` distinct client /24s (10.0.0.0/24, 10.0.1.0/24, …), with an ECS scope of `scope`. */
export function clientNets(n: number, facts: Partial<ClientFacts> = {}): ClientFacts[] {
  return Array.from({ length: n }, (_, i) => client({ ...facts, ip: `10.${(i >> 8) & 255}.${i & 255}.0` }));
}

export function query(q: Partial<SteerQuery> = {}): SteerQuery {
  return { service: 'api', family: 4, client: client(), ...q };
}
