// Answers for the names steer() decides (`<service>.<apex>` and the pinned
// `<region>.<service>.<apex>`): steer() called once per answer order (seeded,
// `variants` of them) per located network (located-clients.ts), name and
// family; the encoded answer sections kept in the snapshot's caches and handed
// out in turn, so that the order across queries follows the weighted shuffle.

import { seededRandom, steer } from '../steer/steer.js';
import type { Decision } from '../steer/types.js';
import { createClientLocator } from './located-clients.js';
import { timeDecision, type RegionSlots, type ResponderStats } from './responder-stats.js';
import { remember } from './served-cache.js';
import type { AnswerSet, Client, Served, Variant } from './served.js';
import { TYPE, type Query } from './wire.js';
import type { DynamicName } from './zone.js';

export type SteeredAnswerOptions = {
  stats: ResponderStats;
  regionSlot: RegionSlots;
  /** Answer orders precomputed per answer set. */
  variants: number;
  /** Located client networks remembered per snapshot. */
  maxClients: number;
  /** Answer sets (name, type, client network) remembered per snapshot. */
  maxAnswerSets: number;
};

/**
 * Picks the answer for an A or AAAA query at a dynamic name: the next variant
 * of the client's answer set. `resolver` is the address the query came from,
 * which locates the client when the query has no ECS option.
 */
export type SteeredAnswers = ((s: Served, packet: Buffer, q: Query, resolver: string, name: DynamicName) => Variant) & {
  /** Finds the answer set a query would take, counting no answer (a state prepared ahead: Responder.prepare); its variants. */
  warm(s: Served, packet: Buffer, q: Query, resolver: string, name: DynamicName): readonly Variant[];
};

/**
 * The A or AAAA records of a decision's endpoints, in order: each address
 * endpoint's, each flattened hostname's (CNAME endpoints have none to give),
 * once each and at most `max`.
 */
function addressesOf(answers: Decision['answers'], family: 4 | 6, max: number): string[] {
  const out = new Set<string>();
  for (const a of answers) for (const address of a.addresses) if (address.includes(':') === (family === 6) && out.size < max) out.add(address);
  return [...out];
}

export function createSteeredAnswers(opts: SteeredAnswerOptions): SteeredAnswers {
  const { stats, regionSlot } = opts;
  const variantCount = opts.variants;
  const maxSets = opts.maxAnswerSets;
  const locate = createClientLocator(opts.maxClients);
  // The same array as in stats, never replaced: one closure load per query instead of a property load.
  const byRegion = stats.answersByRegion;

  function answerSet(s: Served, client: Client, name: DynamicName, type: number): AnswerSet {
    const family = type === TYPE.A ? 4 : 6;
    const key = `${client.net}|${name.index}|${family}`;
    let set = s.sets.get(key);
    if (set) return set;
    const node = s.zone.dynamic[name.index];
    const query = { service: name.service, family, pinnedRegion: name.pinnedRegion, client: client.facts } as const;
    const seen = new Map<string, Variant>();
    const variants: Variant[] = [];
    for (let i = 0; i < variantCount; i++) {
      const random = seededRandom(0x9e3779b9 * (i + 1));
      const started = performance.now();
      const decision = steer(query, s.snapshot, random);
      timeDecision(stats, performance.now() - started);
      stats.steerCalls++;
      const cname = decision.answers[0]?.cname;
      const addresses = cname === undefined ? addressesOf(decision.answers, family, s.snapshot.services.get(name.service)?.maxAnswers ?? 8) : [];
      const order = `${decision.ttl}|${decision.scope}|${decision.region}|${cname ?? addresses.join(',')}`;
      let variant = seen.get(order);
      if (!variant) {
        const hasAnswer = addresses.length > 0 || cname !== undefined;
        const body = cname !== undefined ? s.zone.cnameAnswer(cname, decision.ttl) : hasAnswer ? s.zone.addressAnswers(addresses, type, decision.ttl) : node.nodata;
        const region = hasAnswer && decision.region !== undefined ? regionSlot(decision.region) : -1;
        variant = { body, scope: decision.scope, region };
        seen.set(order, variant);
      }
      variants.push(variant);
      // One endpoint (or none) has one order: no point asking again.
      if (i === 0 && decision.answers.length <= 1) break;
    }
    set = { variants, next: 0 };
    remember(s.sets, key, set, maxSets);
    return set;
  }

  function setOf(s: Served, packet: Buffer, q: Query, resolver: string, name: DynamicName): AnswerSet {
    const client = locate(s, packet, q, resolver);
    const slot = name.index * 2 + (q.qtype === TYPE.A ? 0 : 1);
    return client.sets[slot] ?? (client.sets[slot] = answerSet(s, client, name, q.qtype));
  }

  function steered(s: Served, packet: Buffer, q: Query, resolver: string, name: DynamicName): Variant {
    const set = setOf(s, packet, q, resolver, name);
    const variant = set.variants[set.next];
    set.next = set.next + 1 === set.variants.length ? 0 : set.next + 1;
    if (variant.region >= 0) byRegion[variant.region]++;
    else stats.emptyAnswers++;
    return variant;
  }

  return Object.assign(steered, { warm: (s: Served, packet: Buffer, q: Query, resolver: string, name: DynamicName) => setOf(s, packet, q, resolver, name).variants });
}
