import { createRequire } from 'node:module';
import type { Countries } from 'world-countries';

export type LatLon = { readonly lat: number; readonly lon: number };

// world-countries' `latlng` is a representative point of each country (not a
// population centre): good enough to rank regions when GeoIP knows no city.
const byCode = loadCountries();

/**
 * The code and point of each country, and nothing else of the package's 1.4 MB of JSON: the
 * array is dropped (from require's cache too) once read, which saves every thread that
 * locates clients several MB of heap. A CommonJS package whose typings declare an ES default
 * export: require() gives the array under Node, tsx and vitest alike.
 */
function loadCountries(): Map<string, LatLon> {
  const require = createRequire(import.meta.url);
  const path = require.resolve('world-countries');
  const countries = require(path) as Countries;
  const map = new Map<string, LatLon>(countries.map((c) => [c.cca2, Object.freeze({ lat: c.latlng[0], lon: c.latlng[1] })]));
  delete require.cache[path];
  return map;
}

/** Coordinates of a country by ISO 3166-1 alpha-2 code (any case), if known. */
export function countryLocation(cc: string): LatLon | undefined {
  return byCode.get(cc) ?? byCode.get(cc.toUpperCase());
}

/** Every country with coordinates, by code: for "which countries moved" reports. */
export function allCountries(): ReadonlyMap<string, LatLon> {
  return byCode;
}
