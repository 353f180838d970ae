import { allCountries } from '../geo/countries.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import { steer } from '../steer/steer.js';
import type { ClientFacts } from '../steer/types.js';

export type Move = { service: string; from: string | undefined; to: string | undefined; countries: string[] };

// For location-based policies (geo, latency, failover) the region does not
// depend on steering's randomness, only the endpoints' order does.
const firstOf = () => 0.5;

/**
 * Which countries' clients a change moves, and from which region to which:
 * every country, located at its coordinates, steered with the snapshot before
 * and after. The same steer() the DNS server runs, so the report is what
 * resolvers were actually told.
 */
export function countryMoves(before: Snapshot, after: Snapshot): Move[] {
  const moves = new Map<string, Move>();
  for (const [service, doc] of after.services) {
    // A weighted service sends every country everywhere, by share: no country "moves".
    if (!before.services.has(service) || doc.policy === 'weighted') continue;
    for (const [country, location] of allCountries()) {
      const client: ClientFacts = { ip: '0.0.0.0', source: 'resolver', country, location, scope: 0, via: `country ${country}` };
      const query = { service, family: 4 as const, client };
      const from = steer(query, before, firstOf).region;
      const to = steer(query, after, firstOf).region;
      if (from === to) continue;
      const key = `${service}|${from}|${to}`;
      const move = moves.get(key) ?? { service, from, to, countries: [] };
      move.countries.push(country);
      moves.set(key, move);
    }
  }
  return [...moves.values()].map((m) => ({ ...m, countries: m.countries.sort() }));
}
