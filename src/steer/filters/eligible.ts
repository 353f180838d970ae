import type { Candidate, Filter } from '../types.js';

/**
 * Keeps the regions allowed to serve the service (all of them unless the
 * service lists some; only the pinned one for `<region>.<service>` names), with
 * their endpoints of the queried address family. Regions with no such
 * endpoint leave: an AAAA query goes to the nearest region that has IPv6.
 */
export const eligible: Filter = (candidates, ctx) => {
  const { query, snapshot } = ctx;
  const service = snapshot.services.get(query.service);
  if (!service) {
    ctx.trace.push(`eligible: no service "${query.service}"`);
    return [];
  }
  const allowed = service.regions ? new Set(service.regions) : undefined;
  const out: Candidate[] = [];
  for (const c of candidates) {
    if (allowed && !allowed.has(c.region.id)) continue;
    if (query.pinnedRegion !== undefined && c.region.id !== query.pinnedRegion) continue;
    const endpoints = c.endpoints.filter((e) => e.families.includes(query.family));
    if (endpoints.length > 0) out.push({ ...c, endpoints });
  }
  const scope = query.pinnedRegion !== undefined ? `pinned to ${query.pinnedRegion}` : allowed ? `service regions` : 'all regions';
  ctx.trace.push(
    `eligible: ${out.length} of ${candidates.length} regions serve ${query.service} over IPv${query.family} (${scope})` +
      (out.length ? `: ${out.map((c) => c.region.id).join(', ')}` : ''),
  );
  return out;
};
