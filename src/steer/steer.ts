import type { Policy } from '../config/schema.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import { capacity } from './filters/capacity.js';
import { eligible } from './filters/eligible.js';
import { pick } from './filters/pick.js';
import { rankFailover } from './filters/rank-failover.js';
import { rankGeo } from './filters/rank-geo.js';
import { rankLatency } from './filters/rank-latency.js';
import { rankWeighted } from './filters/rank-weighted.js';
import { up } from './filters/up.js';
import type { Candidate, Decision, Filter, Random, SteerContext, SteerQuery } from './types.js';

/** TTL cap while failing open: resolvers come back soon, when something may be up again. */
export const FAILED_OPEN_TTL = 10;
/**
 * TTL cap while an answered endpoint is in transition (gdnsd shortens TTLs the
 * same way), and while the first-ranked region sheds load, so the shed share
 * follows control's changes quickly.
 */
export const TRANSITION_TTL = 5;

/**
 * The chain for each policy, in order: policies swap the ranking step. Ranked
 * policies spill a share of a saturated first choice to the next in rank;
 * `weighted` does not: its weights already set each region's share, the same
 * for every client.
 */
export const chains: Readonly<Record<Policy, readonly Filter[]>> = {
  geo: [eligible, up, rankGeo, capacity, pick],
  latency: [eligible, up, rankLatency, capacity, pick],
  failover: [eligible, up, rankFailover, capacity, pick],
  weighted: [eligible, up, rankWeighted, pick],
};

/**
 * Whether a policy's answer depends on where the client is. Those that do not
 * give every client the same answer, so the reply's ECS scope is 0 and
 * resolvers cache one answer for all their clients.
 */
export const usesClientLocation: Readonly<Record<Policy, boolean>> = {
  geo: true,
  latency: true,
  failover: false,
  weighted: false,
};

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
  const service = snapshot.services.get(query.service);
  const policy = service?.policy ?? 'geo';
  const chain = chains[policy];
  let regionsBeforeRank = 0;
  for (const [i, filter] of chain.entries()) {
    if (i === 2) regionsBeforeRank = candidates.length;
    candidates = filter(candidates, ctx);
  }
  const chosen = candidates[0];
  const baseTtl = service?.ttl ?? 0;
  const moving = chosen?.endpoints.some((e) => e.transition) ?? false;
  const shedding = ctx.shedding;
  const short = moving || shedding !== undefined;
  const steeredTtl = ctx.failedOpen ? Math.min(baseTtl, FAILED_OPEN_TTL) : short ? Math.min(baseTtl, TRANSITION_TTL) : baseTtl;
  const ttl = flattenedTtl(chosen, steeredTtl, ctx.trace);
  // The client's location only matters when ranking had a choice to make and
  // used it: a pinned name, a lone candidate or a location-independent policy
  // gives everyone the same answer. A capacity split answers per client
  // network, so the scope is never wider than the network it hashed.
  const located = query.pinnedRegion !== undefined || regionsBeforeRank <= 1 || !usesClientLocation[policy] ? 0 : client.scope;
  const scope = Math.max(located, shedding?.bucketPrefix ?? 0);
  if (ctx.failedOpen) ctx.trace.push(`ttl ${ttl} (failed open, capped at ${FAILED_OPEN_TTL})`);
  else if (short && ttl < baseTtl) {
    const why = moving ? 'an answered endpoint is in transition' : `${shedding!.region} is shedding load`;
    ctx.trace.push(`ttl ${ttl} (${why}, capped at ${TRANSITION_TTL})`);
  }
  if (scope > located) ctx.trace.push(`scope /${scope} (capacity splits clients by /${scope} network; location alone: /${located})`);
  return {
    answers: chosen ? chosen.endpoints.map((e) => ({ address: e.address, region: e.region, zone: e.zone, addresses: e.addresses, ...(e.cname !== undefined ? { cname: e.cname } : {}) })) : [],
    region: chosen?.region.id,
    ttl,
    scope,
    failedOpen: ctx.failedOpen,
    trace: ctx.trace,
  };
}

/**
 * The TTL, no longer than a quarter of the TTL a flattened hostname's records
 * had when control looked them up: it looks again at three quarters
 * (control/hostnames.ts), and the snapshot's TTL does not count down, so an
 * answer given just before that still expires with the records.
 */
function flattenedTtl(chosen: Candidate | undefined, ttl: number, trace: string[]): number {
  if (!chosen || chosen.endpoints[0]?.cname !== undefined) return ttl;
  let out = ttl;
  for (const e of chosen.endpoints) if (e.addressTtl !== undefined) out = Math.min(out, Math.max(1, Math.ceil(e.addressTtl / 4)));
  if (out < ttl) trace.push(`ttl ${out} (a quarter of a flattened hostname's records' TTL: they are looked up again at three quarters)`);
  return out;
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
