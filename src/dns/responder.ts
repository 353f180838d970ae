import type { Locator } from '../geo/locator.js';
import type { Logger } from '../log.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { ServingState } from '../snapshot/source.js';
import { BUCKET_PREFIX } from '../steer/filters/capacity.js';
import { seededRandom, steer } from '../steer/steer.js';
import type { ClientFacts } from '../steer/types.js';
import { createRateLimiter, KIND, RRL_DEFAULTS, VERDICT, type RateLimiter, type RrlSettings } from './rrl.js';
import { zoneOf, type DynamicName, type Zone } from './zone.js';
import {
  CLASS_IN,
  DROP,
  RCODE,
  TYPE,
  ecsAddress,
  formatAddress,
  maskAddress,
  parseAddress,
  readQuery,
  udpLimit,
  writeError,
  writeResponse,
  type Body,
  type Query,
} from './wire.js';

export type Transport = 'udp' | 'tcp';

/** Where a query came from: a dgram RemoteInfo or a TCP socket's remote end. */
export type Remote = { readonly address: string; readonly family?: string | number };

export type ResponderStats = {
  queries: number;
  /** Answered NOERROR (with data or NODATA). */
  noerror: number;
  nxdomain: number;
  refused: number;
  formerr: number;
  notimp: number;
  badvers: number;
  servfail: number;
  /** Messages with no reply: too short for a header, or responses (QR=1). */
  dropped: number;
  /** UDP replies sent empty with TC set because they did not fit. */
  truncated: number;
  /** UDP replies not sent: the client network was over its response rate (RRL). */
  rrlDropped: number;
  /** UDP replies sent empty with TC set instead of in full: over the rate, every `slip`-th one (RRL). */
  rrlSlipped: number;
  /** Exceptions caught while answering (each answered SERVFAIL). */
  errors: number;
  /** steer() calls: answer-set cache misses times variants. */
  steerCalls: number;
  /** Times the zone was compiled from a new snapshot. */
  compiles: number;
  /** Queries whose question was read, by QTYPE: `byType[i]` counts `QTYPE_LABELS[i]`. */
  byType: number[];
  /** Every region seen in a snapshot, in the order first seen; never shrinks, so indexes stay valid. */
  answerRegions: string[];
  /** A and AAAA answers from steer() with addresses, by the region that served them: `answersByRegion[i]` counts `answerRegions[i]`. */
  answersByRegion: number[];
  /** A and AAAA answers from steer() without an address (NODATA: no region could serve). */
  emptyAnswers: number;
  /**
   * Time spent in steer() (cache misses only): `decisionBuckets[i]` counts calls that took at most
   * `DECISION_BUCKETS[i]` seconds and more than the bound before it (not cumulative); the last slot is
   * past the last bound. The counts add up to `steerCalls`.
   */
  decisionBuckets: number[];
  /** Total time spent in steer(), in seconds. */
  decisionSeconds: number;
};

/** Labels of `ResponderStats.byType`, in index order. */
export const QTYPE_LABELS = ['A', 'AAAA', 'NS', 'SOA', 'ANY', 'other'] as const;
const QTYPE_OTHER = QTYPE_LABELS.length - 1;
/** QTYPE (below 256) → index in `byType`: one load per query, no string and no map. */
const QTYPE_SLOT = new Uint8Array(256).fill(QTYPE_OTHER);
QTYPE_SLOT[TYPE.A] = 0;
QTYPE_SLOT[TYPE.AAAA] = 1;
QTYPE_SLOT[TYPE.NS] = 2;
QTYPE_SLOT[TYPE.SOA] = 3;
QTYPE_SLOT[TYPE.ANY] = 4;

/** Upper bounds (seconds) of `ResponderStats.decisionBuckets`; one more slot counts the rest. */
export const DECISION_BUCKETS: readonly number[] = [
  0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];

/** Answers one DNS message; `undefined` means send nothing. Never throws. */
export type Responder = ((packet: Buffer, remote: Remote, transport: Transport) => Buffer | undefined) & {
  readonly stats: ResponderStats;
  /** The response rate limiter (its table size and settings, for tests and metrics). */
  readonly rrl: RateLimiter;
};

/** Where answers come from; when the snapshot or the locator changes, every cache is dropped. */
export type ResponderOptions = (
  | { getState(): ServingState }
  | { getSnapshot(): Snapshot; locator: Locator }
) & {
  log: Logger;
  /** Our EDNS UDP payload size, advertised and the largest UDP reply we send. Default 1232. */
  udpPayloadSize?: number;
  /** Answer orders precomputed per answer set (seeded steer() calls), rotated per query. Default 16. */
  variants?: number;
  /** Located client networks remembered per snapshot. Default 20,000. */
  maxClients?: number;
  /** Answer sets (name, type, client network) remembered per snapshot. Default 20,000. */
  maxAnswerSets?: number;
  /**
   * Response rate limiting: these fields win over the zone's `rrl` settings
   * (which win over the defaults). UDP only; TCP is never limited.
   */
  rrl?: Partial<RrlSettings>;
  /** The clock RRL reads, in ms, at every reply it counts. Default: `performance.now`, read once per event-loop turn. */
  now?: () => number;
};

/** `region`: index in `stats.answerRegions`, -1 when the answer has no address. */
type Variant = { readonly body: Body; readonly scope: number; readonly region: number };
type AnswerSet = { readonly variants: readonly Variant[]; next: number };
/** A client network as located, and the answer sets already found for it, by dynamic name and family. */
type Client = { readonly facts: ClientFacts; readonly net: string; readonly sets: (AnswerSet | undefined)[] };

type Served = {
  readonly snapshot: Snapshot;
  readonly locator: Locator;
  readonly zone: Zone;
  /** Clients by ECS address and prefix (IPv4, as a number: no string to build and hash per query). */
  readonly clients4: Map<number, Client>;
  /** Clients by ECS option octets (IPv6) or resolver address. */
  readonly clients: Map<string, Client>;
  readonly sets: Map<string, AnswerSet>;
  /** Some region sheds clients by capacity: answers depend on the client's /24 (/56). */
  readonly shedding: boolean;
};

const TCP_LIMIT = 65535;

/**
 * Creates the authoritative responder: reads a query, finds the answer in the
 * zone compiled from the current snapshot (steer() for service names, through
 * caches that live as long as the snapshot) and writes the reply.
 */
export function createResponder(opts: ResponderOptions): Responder {
  const log = opts.log.child({ component: 'dns' });
  const getState = 'getState' in opts ? () => opts.getState() : undefined;
  const getSnapshot = 'getSnapshot' in opts ? () => opts.getSnapshot() : undefined;
  const fixedLocator = 'locator' in opts ? opts.locator : undefined;
  const udpSize = opts.udpPayloadSize ?? 1232;
  const variantCount = Math.max(1, opts.variants ?? 16);
  const maxClients = opts.maxClients ?? 20_000;
  const maxSets = opts.maxAnswerSets ?? 20_000;
  const stats: ResponderStats = {
    queries: 0,
    noerror: 0,
    nxdomain: 0,
    refused: 0,
    formerr: 0,
    notimp: 0,
    badvers: 0,
    servfail: 0,
    dropped: 0,
    truncated: 0,
    rrlDropped: 0,
    rrlSlipped: 0,
    errors: 0,
    steerCalls: 0,
    compiles: 0,
    byType: QTYPE_LABELS.map(() => 0),
    answerRegions: [],
    answersByRegion: [],
    emptyAnswers: 0,
    decisionBuckets: [...DECISION_BUCKETS, Infinity].map(() => 0),
    decisionSeconds: 0,
  };
  // The same arrays as in stats, never replaced: one closure load per query instead of a property load.
  const byType = stats.byType;
  const byRegion = stats.answersByRegion;
  const regionSlots = new Map<string, number>();

  let served: Served | undefined;
  let failed: Snapshot | undefined;

  const rrlOverride = opts.rrl ?? {};
  const rrl = createRateLimiter({ ...RRL_DEFAULTS, ...rrlOverride });
  let rrlOn = rrl.settings.enabled;
  // Reading a clock can cost half as much as answering (~0.2 µs on a VM): by default one reading serves
  // every datagram of one event-loop turn (libuv reads up to 32 per turn under load, one when idle).
  let turnTime = -1;
  const endTurn = () => {
    turnTime = -1;
  };
  const now =
    opts.now ??
    (() => {
      if (turnTime < 0) {
        turnTime = performance.now();
        setImmediate(endTurn);
      }
      return turnTime;
    });

  function current(): Served {
    const state = getState?.();
    const snapshot = state ? state.snapshot : getSnapshot!();
    const locator = state ? state.locator : fixedLocator!;
    if (served && served.snapshot === snapshot && served.locator === locator) return served;
    if (served && failed === snapshot) return served;
    try {
      const zone = zoneOf(snapshot);
      const shedding = Object.values(snapshot.capacity ?? {}).some((c) => c.shed > 0);
      served = { snapshot, locator, zone, clients4: new Map(), clients: new Map(), sets: new Map(), shedding };
      stats.compiles++;
      // The rate limiter outlives snapshots: a new one (every health change) must not reset the buckets.
      rrl.configure({ ...RRL_DEFAULTS, ...snapshot.zone.rrl, ...rrlOverride });
      rrlOn = rrl.settings.enabled;
      // Every region is counted from the start (at 0), not from its first answer.
      for (const r of snapshot.regions) regionSlot(r.id);
      log.debug({ version: snapshot.version, names: zone.nodes.size }, 'zone compiled');
    } catch (err) {
      if (!served) throw err;
      // Keep answering from the last good zone rather than failing every query.
      failed = snapshot;
      log.error({ err, version: snapshot.version }, 'cannot compile zone; answering from the previous snapshot');
    }
    return served;
  }

  function regionSlot(id: string): number {
    let slot = regionSlots.get(id);
    if (slot === undefined) {
      slot = stats.answerRegions.push(id) - 1;
      byRegion.push(0);
      regionSlots.set(id, slot);
    }
    return slot;
  }

  function timeDecision(ms: number): void {
    const seconds = ms / 1000;
    let i = 0;
    while (i < DECISION_BUCKETS.length && seconds > DECISION_BUCKETS[i]) i++;
    stats.decisionBuckets[i]++;
    stats.decisionSeconds += seconds;
  }

  function count(rcode: number): void {
    if (rcode === RCODE.NOERROR) stats.noerror++;
    else if (rcode === RCODE.NXDOMAIN) stats.nxdomain++;
    else if (rcode === RCODE.REFUSED) stats.refused++;
    else if (rcode === RCODE.FORMERR) stats.formerr++;
    else if (rcode === RCODE.NOTIMP) stats.notimp++;
    else if (rcode === RCODE.BADVERS) stats.badvers++;
    else if (rcode === RCODE.SERVFAIL) stats.servfail++;
    else if (rcode === DROP) stats.dropped++;
  }

  function locate(s: Served, packet: Buffer, q: Query, remote: Remote): Client {
    const ecs = q.ecs >= 0 && q.ecsSourcePrefix > 0;
    let key4 = -1;
    let key = '';
    let client: Client | undefined;
    if (ecs && q.ecsFamily === 1) {
      // The ADDRESS octets and the prefix as one number: a small integer for /24 and shorter.
      let n = 0;
      for (let i = q.ecs + 4, end = q.ecs + q.ecsLength; i < end; i++) n = n * 256 + packet[i];
      key4 = n * 64 + q.ecsSourcePrefix;
      client = s.clients4.get(key4);
    } else {
      // ECS keys start with the FAMILY octets (0x00), resolver keys with an address's text: they cannot collide.
      key = ecs ? packet.toString('latin1', q.ecs, q.ecs + q.ecsLength) : remote.address;
      client = s.clients.get(key);
    }
    if (client) return client;
    let ip: string;
    let prefix: number;
    if (ecs) {
      ip = ecsAddress(packet, q);
      prefix = q.ecsSourcePrefix;
    } else {
      // A v4-mapped address (dual-stack socket) is the IPv4 client it maps.
      ip = /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(remote.address) ? remote.address.slice(7) : remote.address;
      prefix = ip.includes(':') ? 128 : 32;
    }
    const facts = s.locator.locate(ip, prefix, ecs ? 'ecs' : 'resolver');
    client = { facts, net: network(facts, prefix, s.shedding), sets: new Array(s.zone.dynamic.length * 2) };
    if (key4 >= 0) remember(s.clients4, key4, client, maxClients);
    else remember(s.clients, key, client, maxClients);
    return client;
  }

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
      timeDecision(performance.now() - started);
      stats.steerCalls++;
      const addresses = decision.answers.map((a) => a.address).filter((a) => a.includes(':') === (family === 6));
      const order = `${decision.ttl}|${decision.scope}|${decision.region}|${addresses.join(',')}`;
      let variant = seen.get(order);
      if (!variant) {
        const hasAddress = addresses.length > 0;
        const body = hasAddress ? s.zone.addressAnswers(addresses, type, decision.ttl) : node.nodata;
        const region = hasAddress && decision.region !== undefined ? regionSlot(decision.region) : -1;
        variant = { body, scope: decision.scope, region };
        seen.set(order, variant);
      }
      variants.push(variant);
      // One address (or none) has one order: no point asking again.
      if (i === 0 && addresses.length <= 1) break;
    }
    set = { variants, next: 0 };
    remember(s.sets, key, set, maxSets);
    return set;
  }

  function respond(packet: Buffer, remote: Remote, transport: Transport): Buffer | undefined {
    stats.queries++;
    const q = readQuery(packet);
    if (q.rcode !== RCODE.NOERROR) {
      if (q.rcode !== DROP && transport === 'udp' && rrlOn) {
        const verdict = limit(remote, KIND.ERROR);
        if (verdict !== VERDICT.SEND) return verdict === VERDICT.SLIP ? slipError(packet, q, q.rcode) : undefined;
      }
      count(q.rcode);
      return writeError(packet, q, q.rcode, udpSize);
    }
    byType[q.qtype < 256 ? QTYPE_SLOT[q.qtype] : QTYPE_OTHER]++;
    try {
      const s = current();
      if (q.qclass !== CLASS_IN || q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR) return error(packet, q, RCODE.REFUSED, remote, transport);
      if (q.qtype === TYPE.MAILA || q.qtype === TYPE.MAILB) return error(packet, q, RCODE.NOTIMP, remote, transport);
      const node = s.zone.nodes.get(q.key);
      let body: Body;
      let scope = 0;
      if (node === undefined) {
        const nx = s.zone.nxdomain(q.key);
        // Outside the zone: REFUSED, the question only (no referral, no SOA: nothing to amplify with).
        if (nx === undefined) return error(packet, q, RCODE.REFUSED, remote, transport);
        body = nx;
      } else if (node.dynamic !== undefined && (q.qtype === TYPE.A || q.qtype === TYPE.AAAA)) {
        const client = locate(s, packet, q, remote);
        const slot = node.dynamic.index * 2 + (q.qtype === TYPE.A ? 0 : 1);
        const set = client.sets[slot] ?? (client.sets[slot] = answerSet(s, client, node.dynamic, q.qtype));
        const variant = set.variants[set.next];
        set.next = set.next + 1 === set.variants.length ? 0 : set.next + 1;
        if (variant.region >= 0) byRegion[variant.region]++;
        else stats.emptyAnswers++;
        body = variant.body;
        // Source prefix 0: located by the resolver, and the answer is for everyone behind it.
        scope = q.ecsSourcePrefix > 0 ? variant.scope : 0;
      } else {
        body = node.bodies.get(q.qtype) ?? node.nodata;
      }
      if (transport === 'udp' && rrlOn) {
        const verdict = limit(remote, body.rcode === RCODE.NOERROR ? KIND.ANSWER : body.rcode === RCODE.NXDOMAIN ? KIND.NXDOMAIN : KIND.ERROR);
        // Slipped: the question, TC set, no records (an OPT when asked): no bigger than the query.
        if (verdict !== VERDICT.SEND) return verdict === VERDICT.SLIP ? writeResponse(packet, q, body, scope, udpSize, 0) : undefined;
      }
      const out = writeResponse(packet, q, body, scope, udpSize, transport === 'udp' ? udpLimit(q, udpSize) : TCP_LIMIT);
      count(body.rcode);
      if (out[2] & 0x02) stats.truncated++;
      return out;
    } catch (err) {
      stats.errors++;
      stats.servfail++;
      log.debug({ err }, 'query failed: SERVFAIL');
      return writeError(packet, q, RCODE.SERVFAIL, udpSize);
    }
  }

  function limit(remote: Remote, kind: number): number {
    const verdict = rrl.check(remote.address, kind, now());
    if (verdict === VERDICT.DROP) stats.rrlDropped++;
    else if (verdict === VERDICT.SLIP) stats.rrlSlipped++;
    return verdict;
  }

  function slipError(packet: Buffer, q: Query, rcode: number): Buffer | undefined {
    const out = writeError(packet, q, rcode, udpSize);
    if (out) out[2] |= 0x02; // TC
    return out;
  }

  function error(packet: Buffer, q: Query, rcode: number, remote: Remote, transport: Transport): Buffer | undefined {
    if (transport === 'udp' && rrlOn) {
      const verdict = limit(remote, KIND.ERROR);
      if (verdict !== VERDICT.SEND) return verdict === VERDICT.SLIP ? slipError(packet, q, rcode) : undefined;
    }
    count(rcode);
    return writeError(packet, q, rcode, udpSize);
  }

  return Object.assign(respond, { stats, rrl });
}

/**
 * The client network as located: every address in it gets the same facts.
 * While a region sheds clients by capacity, the answer also depends on the
 * client's /24 (/56) bucket, so the network is never wider than that.
 */
function network(facts: ClientFacts, prefix: number, shedding: boolean): string {
  const bucket = facts.ip.includes(':') ? BUCKET_PREFIX[6] : BUCKET_PREFIX[4];
  const bits = Math.min(shedding ? Math.max(facts.scope, bucket) : facts.scope, prefix);
  const bytes = parseAddress(facts.ip);
  if (!bytes) return `${facts.source}:${facts.ip}/${prefix}`;
  return `${facts.source}:${formatAddress(maskAddress(bytes, bits))}/${bits}`;
}

// Bounded by dropping the oldest entry: a flood of distinct clients cannot grow memory.
function remember<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  if (map.size >= max) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
  map.set(key, value);
}
