import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ConfigError, parseRegionDoc, parseZoneDoc, validateConfig } from '../config/load.js';
import { endpointName, ipAddress, type ZoneDoc } from '../config/schema.js';
import { ALGORITHM, FLAGS, signingKeyFromPem, type Algorithm } from '../dnssec/keys.js';
import { buildSnapshot, endpointKey, type ZoneSigning, type CapacityMap, type EndpointHealthInput, type EndpointState, type LatencyMatrix, type ResolvedMap, type Snapshot } from './snapshot.js';

/** Bumped when the document's shape changes in a way an older node cannot read. */
export const DOCUMENT_FORMAT = 1;

/**
 * A snapshot as it travels from control to DNS nodes and rests on their disk:
 * what `buildSnapshot` takes, in JSON. Regions carry only what answers need
 * (no health checks, no balancer section); `health` is the effective health of
 * every endpoint, configuration marks included, so the node rebuilds exactly
 * the snapshot control built. `sha256` covers the rest of the document.
 */
export type SnapshotDocument = {
  format: number;
  version: number;
  sha256: string;
  state: {
    zone: ZoneDoc;
    regions: WireRegion[];
    health: Record<string, EndpointHealthInput>;
    latency: LatencyMatrix;
    capacity: CapacityMap;
    /** Hostname endpoints' resolutions (flattened answers, unresolvable names); absent when there are none. */
    resolved?: ResolvedMap;
    /** A signed zone's key RRsets (base64 RDATA), and the ZSK (PKCS #8 PEM) for a node authorised to sign; absent when unsigned. */
    dnssec?: WireSigning;
  };
};

type WireSigning = {
  keyRrsets: { type: number; ttl: number; rdata: string[]; rrsigs: string[] }[];
  zsk?: { algorithm: number; privateKey: string };
};

type WireRegion = {
  id: string;
  name: string;
  location: { lat: number; lon: number };
  countries: string[];
  zones: { id: string; endpoints: { address?: string; hostname?: string; flatten?: boolean; weight: number }[] }[];
};

/** Why a document was refused: the message names the field. */
export class SnapshotError extends Error {
  override name = 'SnapshotError';
}

/**
 * The JSON text of a snapshot's document (one line, as streamed and stored).
 * A signed zone's ZSK travels only with `withZsk`: to a node authorised to sign.
 */
export function encodeSnapshot(snapshot: Snapshot, opts: { withZsk?: boolean } = {}): string {
  const state: SnapshotDocument['state'] = {
    zone: snapshot.zone,
    regions: snapshot.regions.map((r) => ({
      id: r.id,
      name: r.name,
      location: { lat: r.lat, lon: r.lon },
      countries: [...r.countries],
      zones: r.zones.map((z) => ({ id: z.id, endpoints: z.endpoints.map(wireEndpoint) })),
    })),
    health: Object.fromEntries(
      snapshot.regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints.map((e) => [endpointKey(r.id, z.id, endpointName(e)), { state: e.health, reason: e.reason, transition: e.transition }]))),
    ),
    latency: snapshot.latency,
    capacity: snapshot.capacity,
    ...(Object.keys(snapshot.resolved).length ? { resolved: snapshot.resolved } : {}),
    ...(snapshot.dnssec ? { dnssec: wireSigning(snapshot.dnssec, opts.withZsk === true) } : {}),
  };
  const body = { format: DOCUMENT_FORMAT, version: snapshot.version, state };
  return JSON.stringify({ ...body, sha256: digest(body) });
}

/** What an endpoint's answers need: its address, or its hostname and whether it is flattened. */
function wireEndpoint(e: EndpointState): WireRegion['zones'][number]['endpoints'][number] {
  if (e.kind === 'address') return { address: e.address, weight: e.weight };
  return e.kind === 'cname' ? { hostname: e.address, weight: e.weight } : { hostname: e.address, flatten: true, weight: e.weight };
}

function wireSigning(d: ZoneSigning, withZsk: boolean): WireSigning {
  const b64 = (bs: readonly Buffer[]) => bs.map((b) => b.toString('base64'));
  const keyRrsets = d.keyRrsets.map((r) => ({ type: r.type, ttl: r.ttl, rdata: b64(r.rdata), rrsigs: b64(r.rrsigs) }));
  if (!withZsk || !d.zsk) return { keyRrsets };
  return { keyRrsets, zsk: { algorithm: d.zsk.algorithm, privateKey: d.zsk.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() } };
}

/** A signed zone from its document; a ZSK that does not parse, or is not of its algorithm, is refused. */
function signingOf(w: WireSigning): ZoneSigning {
  const buf = (bs: string[]) => bs.map((b) => Buffer.from(b, 'base64'));
  const keyRrsets = w.keyRrsets.map((r) => ({ type: r.type, ttl: r.ttl, rdata: buf(r.rdata), rrsigs: buf(r.rrsigs) }));
  if (!w.zsk) return { keyRrsets };
  try {
    return { keyRrsets, zsk: signingKeyFromPem(w.zsk.privateKey, w.zsk.algorithm as Algorithm, FLAGS.ZSK) };
  } catch (err) {
    throw new SnapshotError(`dnssec.zsk: not a usable key of algorithm ${w.zsk.algorithm}: ${(err as Error).message}`);
  }
}

const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64').max(4096);
const wireSigningSchema = z.strictObject({
  keyRrsets: z.array(z.strictObject({ type: z.number().int().min(1).max(0xffff), ttl: z.number().int().min(0), rdata: z.array(base64).min(1).max(16), rrsigs: z.array(base64).max(16) })).max(8),
  zsk: z.strictObject({ algorithm: z.union([z.literal(ALGORITHM.ECDSAP256SHA256), z.literal(ALGORITHM.ED25519)]), privateKey: z.string().max(4096) }).optional(),
});

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const envelope = z.strictObject({
  format: z.literal(DOCUMENT_FORMAT, { error: `must be ${DOCUMENT_FORMAT} (this node reads format ${DOCUMENT_FORMAT} only)` }),
  version: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits'),
  state: z.strictObject({
    zone: z.unknown(),
    regions: z.array(z.unknown()).min(1, 'needs at least one region'),
    health: z.record(z.string(), z.strictObject({ state: z.enum(['up', 'down']), reason: z.string().max(1000), transition: z.boolean() })),
    latency: z.record(z.string(), z.record(z.string(), finite.min(0))),
    capacity: z.record(z.string(), z.strictObject({ shed: finite.min(0).max(1), saturation: finite.min(0).optional(), reason: z.string().max(1000) })),
    resolved: z
      .record(
        z.string(),
        z.union([z.strictObject({ addresses: z.array(ipAddress).max(64), ttl: z.number().int().min(0) }), z.strictObject({ error: z.string().max(1000) })]),
      )
      .optional(),
    dnssec: wireSigningSchema.optional(),
  }),
});

/**
 * Parses and checks a document (JSON text) and builds its snapshot: the
 * checksum, the format, the configuration with the same zod schemas and
 * cross-checks as a configuration write, and health for exactly the
 * configured endpoints. Throws a SnapshotError naming what is wrong.
 */
export function decodeSnapshot(text: string): { snapshot: Snapshot; sha256: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new SnapshotError(`not JSON: ${(err as Error).message}`);
  }
  const parsed = envelope.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new SnapshotError(`${i.path.join('.') || '(document)'}: ${i.message}`);
  }
  const doc = parsed.data;
  // Key order survives JSON.parse, so the same stringify gives the same text control hashed.
  if (digest({ format: doc.format, version: doc.version, state: (raw as SnapshotDocument).state }) !== doc.sha256)
    throw new SnapshotError(`sha256: does not match the content of version ${doc.version}`);
  let config;
  try {
    const zone = parseZoneDoc(doc.state.zone, 'zone');
    const regions = doc.state.regions.map((r, i) => parseRegionDoc(r, `regions[${i}]`));
    config = validateConfig({ zone, regions });
  } catch (err) {
    if (err instanceof ConfigError) throw new SnapshotError(`invalid configuration: ${err.message.replaceAll('\n', '; ')}`);
    throw err;
  }
  const keys = new Set(config.regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints.map((e) => endpointKey(r.id, z.id, endpointName(e))))));
  for (const key of keys) if (!Object.hasOwn(doc.state.health, key)) throw new SnapshotError(`health: no entry for endpoint ${key}`);
  for (const key of Object.keys(doc.state.health)) if (!keys.has(key)) throw new SnapshotError(`health: "${key}" is not a configured endpoint`);
  const snapshot = buildSnapshot(config, doc.version, {
    health: new Map(Object.entries(doc.state.health)),
    latency: doc.state.latency,
    capacity: doc.state.capacity,
    resolved: doc.state.resolved,
    dnssec: doc.state.dnssec ? signingOf(doc.state.dnssec) : undefined,
  });
  return { snapshot, sha256: doc.sha256 };
}

function digest(body: { format: number; version: number; state: unknown }): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}
