import type { Candidate, Filter, Random } from '../types.js';

/**
 * Orders regions at random in proportion to the service's `weights`, whoever
 * the client is: the first region is drawn with probability weight / total
 * over the candidates (the healthy ones, after `up`), the next from those
 * left, and so on. Regions of weight 0 (or none) come after every weighted
 * one, in a uniform draw: they serve only as a last resort. Randomness comes
 * only from `ctx.random`, so a seeded variant always gives the same order.
 */
export const rankWeighted: Filter = (candidates, ctx) => {
  const weights = ctx.snapshot.services.get(ctx.query.service)?.weights ?? {};
  const weightOf = (c: Candidate) => weights[c.region.id] ?? 0;
  const heavy = candidates.filter((c) => weightOf(c) > 0);
  const spare = candidates.filter((c) => weightOf(c) === 0);
  const first = drawOrder(heavy, weightOf, ctx.random);
  const rest = drawOrder(spare, () => 1, ctx.random);
  const ranked = [...first.order, ...rest.order];

  const total = heavy.reduce((sum, c) => sum + weightOf(c), 0);
  const shares = [
    ...heavy.map((c) => `${c.region.id} w${weightOf(c)} (${((100 * weightOf(c)) / total).toFixed(0)}%)`),
    ...spare.map((c) => `${c.region.id} w0`),
  ];
  const draw = heavy.length > 0 ? first.draw : rest.draw;
  const how =
    ranked.length === 0
      ? 'no candidates'
      : `${shares.join(', ')}; ` +
        (heavy.length === 0 ? 'no weighted region left, last resort among weight 0; ' : '') +
        (draw ? `draw ${draw.at.toFixed(1)} of ${draw.total} → ${ranked[0].region.id}` : `only ${ranked[0].region.id}`) +
        `; order ${ranked.map((c) => c.region.id).join(' > ')}`;
  ctx.trace.push(`rank weighted: ${how}`);
  return ranked;
};

type Draw = { at: number; total: number };

// Repeated roulette without replacement; the first draw is kept for the trace.
function drawOrder(items: readonly Candidate[], weightOf: (c: Candidate) => number, random: Random): { order: Candidate[]; draw?: Draw } {
  const left = [...items];
  const order: Candidate[] = [];
  let draw: Draw | undefined;
  while (left.length > 1) {
    const total = left.reduce((sum, c) => sum + weightOf(c), 0);
    const at = random() * total;
    draw ??= { at, total };
    let i = 0;
    let below = weightOf(left[0]);
    while (i < left.length - 1 && at >= below) below += weightOf(left[++i]);
    order.push(...left.splice(i, 1));
  }
  return { order: [...order, ...left], draw };
}
