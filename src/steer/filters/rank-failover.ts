import type { Filter } from '../types.js';

/**
 * Orders regions by the service's priority list (`regions`, first choice
 * first), whoever the client is: after `up`, the first healthy listed region
 * serves everyone. Regions the list does not name never serve, not even when
 * failing open.
 */
export const rankFailover: Filter = (candidates, ctx) => {
  const order = ctx.snapshot.services.get(ctx.query.service)?.regions ?? [];
  const priority = new Map<string, number>();
  order.forEach((id, i) => {
    if (!priority.has(id)) priority.set(id, i + 1);
  });
  const ranked = candidates
    .filter((c) => priority.has(c.region.id))
    .sort((a, b) => priority.get(a.region.id)! - priority.get(b.region.id)!);

  const present = new Set(candidates.map((c) => c.region.id));
  const passedOver = [...priority].filter(([id, p]) => !present.has(id) && p < (priority.get(ranked[0]?.region.id) ?? Infinity));
  const unlisted = candidates.filter((c) => !priority.has(c.region.id)).map((c) => c.region.id);
  const line = ranked.map((c) => `${c.region.id} (priority ${priority.get(c.region.id)})`).join(' > ') || 'no listed region among the candidates';
  const notes = [
    passedOver.length ? `passed over: ${passedOver.map(([id, p]) => `${id} (priority ${p})`).join(', ')}` : '',
    unlisted.length ? `not listed, never serve: ${unlisted.join(', ')}` : '',
  ].filter(Boolean);
  ctx.trace.push(`rank failover: ${line}${notes.length ? `; ${notes.join('; ')}` : ''}`);
  return ranked;
};
