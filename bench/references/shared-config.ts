// The configuration every server is given alike: the regions and zone of
// regions/, and one MaxMind-format database of the query mix's client networks
// and the endpoints' addresses.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { countryLocation } from '../../src/geo/countries.js';
import { defaultDatabasePath, openGeoIp } from '../../src/geo/geoip.js';
import { Typed, writeMmdb, type MmdbEntry } from '../../src/geo/test-mmdb-writer.js';
import { SUBNETS } from '../common.js';
import { ROOT } from './settings.js';

export type Region = { id: string; lat: number; lon: number; countries: string[]; endpoints: { zone: string; address: string }[] };
export type Zone = { nameservers: { name: string; addresses: string[] }[]; soa: Record<string, number | string>; nsTtl: number; defaultRegion: string };

/** regions/*.yaml (sg, jkt, bkk, mnl first) and regions/zone.yaml. */
export function readRegions(): { regions: Region[]; zone: Zone } {
  const dir = join(ROOT, 'regions');
  const regions: Region[] = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.yaml') && x !== 'zone.yaml').sort()) {
    const doc = parseYaml(readFileSync(join(dir, f), 'utf8'));
    regions.push({
      id: doc.id,
      lat: doc.location.lat,
      lon: doc.location.lon,
      countries: doc.countries,
      endpoints: doc.zones.flatMap((z: { id: string; endpoints: { address: string }[] }) => z.endpoints.map((e) => ({ zone: z.id, address: e.address }))),
    });
  }
  const order = ['sg', 'jkt', 'bkk', 'mnl'];
  regions.sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id));
  return { regions, zone: parseYaml(readFileSync(join(dir, 'zone.yaml'), 'utf8')) };
}

const toRad = (d: number) => (d * Math.PI) / 180;
export function km(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const h = Math.sin(toRad(b.lat - a.lat) / 2) ** 2 + Math.cos(toRad(a.lat)) * Math.cos(toRad(b.lat)) * Math.sin(toRad(b.lon - a.lon) / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.sqrt(h));
}

/** The MaxMind-format database the references read, and the country of every /24 (from Arus's database). */
export function writeGeoDb(path: string, regions: Region[]): Map<string, string> {
  const geo = openGeoIp(defaultDatabasePath());
  const entries: MmdbEntry[] = [];
  const countryOf = new Map<string, string>();
  const record = (cc: string, at: { lat: number; lon: number }) => ({
    continent: { code: 'AS' },
    country: { iso_code: cc },
    // PowerDNS reads no location without an accuracy radius.
    location: { latitude: new Typed('double', at.lat), longitude: new Typed('double', at.lon), accuracy_radius: new Typed('uint16', 100) },
  });
  for (const net of Object.values(SUBNETS).flat()) {
    const [a, b] = net.split('.').map(Number);
    for (let c = 0; c < 256; c++) {
      const cc = geo.lookup(`${a}.${b}.${c}.1`, 4).facts?.country;
      const at = cc ? countryLocation(cc) : undefined;
      if (!cc || !at) continue;
      countryOf.set(`${a}.${b}.${c}`, cc);
      entries.push({ network: `${a}.${b}.${c}.0/24`, data: record(cc, at) });
    }
  }
  for (const r of regions) for (const e of r.endpoints) entries.push({ network: `${e.address}/32`, data: record(r.countries[0], r) });
  writeFileSync(path, writeMmdb({ ipVersion: 4, recordSize: 28, databaseType: 'GeoIP2-City', entries }));
  return countryOf;
}
