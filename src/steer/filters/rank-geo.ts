import { distanceKm } from '../distance.js';
import type { Candidate, Filter } from '../types.js';

/**
 * Orders regions for the client: a region forced by a `nets` override or
 * listing the client's country as home comes first, then the rest by
 * great-circle distance from the client. Where the client's location is
 * unknown, distance is measured from the override's region or, failing that,
 * the zone's default region — so unknown clients land on the default region
 * and, when it is down, on its nearest neighbour.
 */
export const rankGeo: Filter = (candidates, ctx) => {
  const { client } = ctx.query;
  const { snapshot } = ctx;
  const forced = client.region ?? (client.location ? undefined : snapshot.zone.defaultRegion);
  const forcedRegion = forced !== undefined ? snapshot.regionById.get(forced) : undefined;
  const origin = client.location ?? forcedRegion;
  const from = client.location
    ? `client at ${client.location.lat.toFixed(2)},${client.location.lon.toFixed(2)}`
    : forcedRegion
      ? `${client.region ? 'override' : 'default'} region ${forcedRegion.id}`
      : 'nowhere known';

  const tier = (c: Candidate) =>
    c.region.id === forced || (client.country !== undefined && c.region.countries.has(client.country)) ? 0 : 1;
  const ranked = candidates
    .map((c) => ({ c: { ...c, distanceKm: origin ? distanceKm(origin, c.region) : undefined }, tier: tier(c) }))
    .sort((a, b) => a.tier - b.tier || (a.c.distanceKm ?? 0) - (b.c.distanceKm ?? 0) || (a.c.region.id < b.c.region.id ? -1 : 1));

  const describe = ({ c, tier: t }: (typeof ranked)[number]) => {
    const why = t === 0 ? (c.region.id === forced ? (client.region ? 'override' : 'default') : `home of ${client.country}`) : undefined;
    const km = c.distanceKm === undefined ? '' : `${Math.round(c.distanceKm)} km`;
    return `${c.region.id} (${[why, km].filter(Boolean).join(', ')})`;
  };
  ctx.trace.push(`rank geo from ${from}: ${ranked.map(describe).join(' > ') || 'no candidates'}`);
  return ranked.map((r) => r.c);
};
