import type { Candidate, Filter } from '../types.js';

/**
 * Keeps the regions with at least one healthy endpoint, and within them only
 * the healthy endpoints (a dead zone's endpoints leave the answer). When
 * nothing is up, a fail-open service keeps every candidate as it was and the
 * decision is flagged; a fail-closed one gets no candidate.
 */
export const up: Filter = (candidates, ctx) => {
  const out: Candidate[] = [];
  const notes: string[] = [];
  for (const c of candidates) {
    const healthy = c.endpoints.filter((e) => e.health === 'up');
    notes.push(`${c.region.id} ${healthy.length}/${c.endpoints.length}`);
    if (healthy.length > 0) out.push({ ...c, endpoints: healthy });
  }
  if (out.length > 0 || candidates.length === 0) {
    ctx.trace.push(`up: ${out.length} of ${candidates.length} regions healthy (${notes.join(', ')} endpoints up)`);
    return out;
  }
  const service = ctx.snapshot.services.get(ctx.query.service);
  if (service?.failMode === 'closed') {
    ctx.trace.push(`up: nothing healthy (${notes.join(', ')}); service is fail-closed: no answer`);
    return [];
  }
  ctx.failedOpen = true;
  ctx.trace.push(`up: nothing healthy (${notes.join(', ')}); FAILING OPEN: answering as if all were up`);
  return candidates;
};
