import type { Candidate, Filter } from '../types.js';

/**
 * Keeps the first region and orders its endpoints by a weighted shuffle
 * (Efraimidis–Spirakis: key = u^(1/w), highest first), so an endpoint's share
 * of first places follows its weight; weight-0 endpoints are only used when
 * every endpoint has weight 0. At most the service's `maxAnswers` are kept.
 */
export const pick: Filter = (candidates, ctx) => {
  const first = candidates[0];
  if (!first) {
    ctx.trace.push('pick: no candidate');
    return [];
  }
  const max = ctx.snapshot.services.get(ctx.query.service)?.maxAnswers ?? 8;
  const weighted = first.endpoints.some((e) => e.weight > 0) ? first.endpoints.filter((e) => e.weight > 0) : first.endpoints;
  const endpoints = weighted
    .map((e) => ({ e, key: Math.pow(ctx.random(), 1 / Math.max(e.weight, 1)) }))
    .sort((a, b) => b.key - a.key)
    .slice(0, max)
    .map((k) => k.e);
  ctx.trace.push(`pick: ${first.region.id} → ${endpoints.map((e) => `${e.address} (${e.zone}, w${e.weight})`).join(', ')}`);
  return [{ ...first, endpoints } satisfies Candidate];
};
