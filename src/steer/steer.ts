import type { Snapshot } from '../snapshot/snapshot.js';
import { eligible } from './filters/eligible.js';
import { pick } from './filters/pick.js';
import { rankGeo } from './filters/rank-geo.js';
import { up } from './filters/up.js';
import type { Candidate, Decision, Filter, Random, SteerContext, SteerQuery } from './types.js';

/** TTL cap while failing open: resolvers come back soon, when something may be up again. */
export const FAILED_OPEN_TTL = 10;

/** The chain, in order. Policies swap the ranking step. */
export const chain: readonly Filter[] = [eligible, up, rankGeo, pick];

/**
 * The one steering decision, shared by the DNS server, the explain API and the
 * CLI. Pure: no I/O, no clock; randomness only through `random`.
 */
export function steer(query: SteerQuery, snapshot: Snapshot, random: Random): Decision {
  const { client } = query;
  const ctx: SteerContext = { query, snapshot, random, trace: [], failedOpen: false };
  ctx.trace.push(`client ${client.ip} (${client.source}): ${client.via}`);
  let candidates: Candidate[] = snapshot.regions.map((region) => ({
    region,
    endpoints: region.zones.flatMap((z) => z.endpoints),
  }));
  const regionsBeforeRank: number[] = [];
  for (const filter of chain) {
    if (filter === rankGeo) regionsBeforeRank.push(candidates.length);
    candidates = filter(candidates, ctx);
  }
  const chosen = candidates[0];
  const service = snapshot.services.get(query.service);
  const baseTtl = service?.ttl ?? 0;
  const ttl = ctx.failedOpen ? Math.min(baseTtl, FAILED_OPEN_TTL) : baseTtl;
  // The client's location only matters when ranking had a choice to make:
  // a pinned name or a lone candidate gives everyone the same answer.
  const scope = query.pinnedRegion !== undefined || (regionsBeforeRank[0] ?? 0) <= 1 ? 0 : client.scope;
  if (ctx.failedOpen) ctx.trace.push(`ttl ${ttl} (failed open, capped at ${FAILED_OPEN_TTL})`);
  return {
    answers: chosen ? chosen.endpoints.map((e) => ({ address: e.address, region: e.region, zone: e.zone })) : [],
    region: chosen?.region.id,
    ttl,
    scope,
    failedOpen: ctx.failedOpen,
    trace: ctx.trace,
  };
}

/** A small seeded PRNG (mulberry32), for reproducible weighted order. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
