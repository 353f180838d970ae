import { distanceKm } from '../distance.js';
import type { Candidate, Filter } from '../types.js';
import { rankGeo } from './rank-geo.js';

/**
 * Orders regions by the RTT measured from the probe region nearest to the
 * client (the best stand-in for the client's own network path). Regions
 * without a measurement rank after the measured ones, by distance; with no
 * measurement at all, or no location for the client, this is the geo rank.
 * `nets` overrides and home countries still come first, as in geo.
 */
export const rankLatency: Filter = (candidates, ctx) => {
  const geo = rankGeo(candidates, ctx);
  const { client } = ctx.query;
  const { snapshot } = ctx;
  const origin = client.location ?? (client.region ? snapshot.regionById.get(client.region) : undefined);
  const probeRegions = Object.keys(snapshot.latency).filter((id) => snapshot.regionById.has(id));
  if (!origin || probeRegions.length === 0) {
    ctx.trace.push('rank latency: no measurements for this client; geo order kept');
    return geo;
  }
  const vantage = probeRegions
    .map((id) => ({ id, km: distanceKm(origin, snapshot.regionById.get(id)!) }))
    .sort((a, b) => a.km - b.km)[0].id;
  const rtt = snapshot.latency[vantage];
  const firstTier = (c: Candidate) =>
    c.region.id === client.region || (client.country !== undefined && c.region.countries.has(client.country));
  const key = (c: Candidate, i: number) => [firstTier(c) ? 0 : 1, rtt[c.region.id] === undefined ? 1 : 0, rtt[c.region.id] ?? 0, i] as const;
  const ranked = geo
    .map((c, i) => ({ c, k: key(c, i) }))
    .sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1] || a.k[2] - b.k[2] || a.k[3] - b.k[3])
    .map((x) => x.c);
  ctx.trace.push(
    `rank latency from probe region ${vantage}: ${ranked.map((c) => `${c.region.id} (${rtt[c.region.id] === undefined ? 'no rtt' : `${rtt[c.region.id].toFixed(1)} ms`})`).join(' > ')}`,
  );
  return ranked;
};
