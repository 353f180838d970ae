import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Reader } from 'maxmind';
import { type LatLon, countryLocation } from './countries.js';

/** What one database record says, reduced to what steering uses. */
export type RecordFacts = {
  readonly country?: string;
  readonly location?: LatLon;
  /** For traces: `ID` or `ID @-6.2,106.8` (city-level coordinates). */
  readonly label: string;
};

export type GeoIpAnswer = {
  /** Undefined when the address is in no record (or the record names no place). */
  readonly facts: RecordFacts | undefined;
  /** Prefix length of the database block holding the address, in the address's own family. */
  readonly prefix: number;
  /** Why there are no facts, for traces. */
  readonly miss?: string;
};

export interface GeoIp {
  /** `text` must be a valid address of `family`; IPv4 as a dotted quad. */
  lookup(text: string, family: 4 | 6): GeoIpAnswer;
  readonly path: string;
  readonly ipVersion: 4 | 6;
}

/** The database shipped with the `@ip-location-db/geo-whois-asn-country-mmdb` package. */
export function defaultDatabasePath(): string {
  const pkg = createRequire(import.meta.url).resolve('@ip-location-db/geo-whois-asn-country-mmdb/package.json');
  return join(dirname(pkg), 'geo-whois-asn-country.mmdb');
}

const NOT_FOUND = 'not in GeoIP database';
const NO_COUNTRY = 'GeoIP record names no country';
const NO_IPV6 = 'IPv6 address, IPv4-only GeoIP database';

/** A database file as read, in memory every thread of the process can read (DNS worker threads). */
export type GeoIpFile = { readonly path: string; readonly size: number; readonly mtimeMs: number; readonly bytes: SharedArrayBuffer };

// One copy of each database per process, whichever thread opened it first; a file that changed is read again.
const files = new Map<string, GeoIpFile>();

function bytesOf(path: string): Buffer {
  const st = statSync(path);
  const held = files.get(path);
  if (held && held.size === st.size && held.mtimeMs === st.mtimeMs) return Buffer.from(held.bytes);
  const data = readFileSync(path);
  const bytes = new SharedArrayBuffer(data.length);
  data.copy(Buffer.from(bytes));
  files.set(path, { path, size: st.size, mtimeMs: st.mtimeMs, bytes });
  return Buffer.from(bytes);
}

/** The databases this thread read, to hand to other threads (`adoptGeoIpFiles`). */
export const geoIpFiles = (): GeoIpFile[] => [...files.values()];

/** Databases another thread read: opened from its memory, not read again (unless the file changed since). */
export function adoptGeoIpFiles(list: readonly GeoIpFile[]): void {
  for (const f of list) files.set(f.path, f);
}

/** Opens an .mmdb file; throws an Error naming the file when it cannot be read or parsed. */
export function openGeoIp(path: string): GeoIp {
  let buffer: Buffer;
  try {
    buffer = bytesOf(path);
  } catch (err) {
    throw new Error(`GeoIP database ${path}: cannot read it: ${(err as Error).message}`, { cause: err });
  }
  let reader: Reader<Record<string, unknown>>;
  try {
    reader = new Reader(buffer, { cache: boundedCache(16_384) });
    const { ipVersion, nodeCount } = reader.metadata;
    if ((ipVersion !== 4 && ipVersion !== 6) || !(nodeCount > 0)) throw new Error(`bad metadata (ip_version ${ipVersion}, node_count ${nodeCount})`);
    reader.getWithPrefixLength('1.1.1.1'); // a corrupt tree or data section fails here, not on the first query
  } catch (err) {
    throw new Error(`GeoIP database ${path}: not a readable MaxMind DB (.mmdb) file: ${(err as Error).message}`, { cause: err });
  }
  const ipVersion = reader.metadata.ipVersion as 4 | 6;
  // mmdb-lib hands back the same record object while its decoder cache holds
  // it, so this memo turns repeat lookups into one WeakMap hit.
  const memo = new WeakMap<object, RecordFacts | null>();
  return {
    path,
    ipVersion,
    lookup(text, family) {
      if (family === 6 && ipVersion === 4) return { facts: undefined, prefix: 0, miss: NO_IPV6 };
      // For IPv4 in an IPv6 tree mmdb-lib starts at the IPv4 subtree (::/96),
      // so the prefix it returns is already IPv4-relative (0..32).
      const [record, prefix] = reader.getWithPrefixLength(text);
      if (record === null || typeof record !== 'object') return { facts: undefined, prefix, miss: NOT_FOUND };
      let facts = memo.get(record);
      if (facts === undefined) {
        facts = recordFacts(record) ?? null;
        memo.set(record, facts);
      }
      return facts === null ? { facts: undefined, prefix, miss: NO_COUNTRY } : { facts, prefix };
    },
  };
}

/**
 * Reads a record of either shape: MaxMind GeoLite2/GeoIP2 City or Country
 * (`country.iso_code`, else `registered_country.iso_code`; `location.latitude`
 * and `.longitude`) or flat DB-IP / ip-location-db (`country_code`, optional
 * `latitude` and `longitude`). City coordinates win; else the country's.
 */
export function recordFacts(record: Record<string, unknown>): RecordFacts | undefined {
  const country =
    isoCode(field(record.country, 'iso_code')) ??
    isoCode(field(record.registered_country, 'iso_code')) ??
    isoCode(record.country_code);
  const loc = record.location;
  const city =
    coordinates(field(loc, 'latitude'), field(loc, 'longitude')) ?? coordinates(record.latitude, record.longitude);
  if (city !== undefined)
    return { ...(country && { country }), location: city, label: `${country ?? '??'} @${round(city.lat)},${round(city.lon)}` };
  if (country === undefined) return undefined;
  const location = countryLocation(country);
  return { country, ...(location && { location }), label: country };
}

function field(obj: unknown, key: string): unknown {
  return typeof obj === 'object' && obj !== null ? (obj as Record<string, unknown>)[key] : undefined;
}

function isoCode(v: unknown): string | undefined {
  return typeof v === 'string' && /^[A-Za-z]{2}$/.test(v) ? v.toUpperCase() : undefined;
}

function coordinates(lat: unknown, lon: unknown): LatLon | undefined {
  const la = typeof lat === 'string' && lat.trim() !== '' ? Number(lat) : lat;
  const lo = typeof lon === 'string' && lon.trim() !== '' ? Number(lon) : lon;
  if (typeof la !== 'number' || typeof lo !== 'number') return undefined;
  if (!(Math.abs(la) <= 90 && Math.abs(lo) <= 180)) return undefined;
  return { lat: la, lon: lo };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/** mmdb-lib's decoder cache, kept bounded: cleared whole when full (records are small and re-decoded cheaply). */
function boundedCache(max: number) {
  const map = new Map<string | number, unknown>();
  return {
    get: (key: string | number) => map.get(key),
    set(key: string | number, value: unknown) {
      if (map.size >= max) map.clear();
      map.set(key, value);
    },
  };
}
