import type { Logger } from '../log.js';
import type { ServingState } from '../snapshot/source.js';
import { readQuery } from './query-reader.js';
import { createReplies, type Remote, type Transport } from './replies.js';
import { createRegionSlots, createResponderStats, QTYPE_CAA, QTYPE_OTHER, QTYPE_SLOT, type ResponderStats } from './responder-stats.js';
import { writeError } from './response-writer.js';
import type { RateLimiter, RrlSettings } from './rrl.js';
import { createServedState, type Served, type SnapshotSource, type Variant } from './served.js';
import type { SignedZone } from './signed-answers.js';
import { createSteeredAnswers } from './steered-answers.js';
import { CLASS_IN, KEEPALIVE, RCODE, TYPE, type Body, type Query } from './wire.js';
import type { ZoneNode } from './zone.js';

/**
 * Answers one DNS message; `undefined` means send nothing. Never throws.
 * `tcpIdleMs`: over TCP, the connection's idle timeout in force, offered as
 * the EDNS keepalive TIMEOUT (RFC 7828) to a query that asks for it.
 */
export type Responder = ((packet: Buffer, remote: Remote, transport: Transport, tcpIdleMs?: number) => Buffer | undefined) & {
  readonly stats: ResponderStats;
  /** The response rate limiter (its table size and settings, for tests and metrics). */
  readonly rrl: RateLimiter;
  /**
   * Makes `state`'s answers ahead, before it is current: its zone compiled, and the answer sets of
   * these earlier queries (a sample of recent traffic) filled in, a slice per event-loop turn, so
   * that the swap costs the queries after it nothing. Resolves when the state may be made current.
   */
  prepare(this: void, state: ServingState, sample: readonly { packet: Buffer; address: string }[]): Promise<void>;
};

/** Where answers come from; when the snapshot or the locator changes, every cache is dropped. */
export type ResponderOptions = SnapshotSource & {
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
  /**
   * The share of the node's traffic this responder answers (0 < share ≤ 1; a
   * worker of N: 1/N): every RRL rate is multiplied by it (never below 1/s),
   * so that N workers together allow what one would. Default 1.
   */
  rrlShare?: number;
  /** The clock RRL reads, in ms, at every reply it counts. Default: `performance.now`, read once per event-loop turn. */
  now?: () => number;
};

/**
 * Creates the authoritative responder: reads a query, finds the answer in the
 * zone compiled from the current snapshot (steer() for service names, through
 * caches that live as long as the snapshot) and writes the reply.
 */
export function createResponder(opts: ResponderOptions): Responder {
  const log = opts.log.child({ component: 'dns' });
  const udpSize = opts.udpPayloadSize ?? 1232;
  const stats = createResponderStats();
  // The same array as in stats, never replaced: one closure load per query instead of a property load.
  const byType = stats.byType;
  const regionSlot = createRegionSlots(stats);
  const replies = createReplies({ stats, udpPayloadSize: udpSize, rrl: opts.rrl ?? {}, rrlShare: opts.rrlShare, now: opts.now });
  const { send, reject } = replies;
  const current = createServedState(opts, {
    log,
    stats,
    onCompiled(snapshot) {
      // The rate limiter outlives snapshots: a new one (every health change) must not reset the buckets.
      replies.configure(snapshot.zone.rrl);
      // Every region is counted from the start (at 0), not from its first answer.
      for (const r of snapshot.regions) regionSlot(r.id);
    },
  });
  const steered = createSteeredAnswers({
    stats,
    regionSlot,
    variants: Math.max(1, opts.variants ?? 16),
    maxClients: opts.maxClients ?? 20_000,
    maxAnswerSets: opts.maxAnswerSets ?? 20_000,
  });

  function respond(packet: Buffer, remote: Remote, transport: Transport, tcpIdleMs?: number): Buffer | undefined {
    stats.queries++;
    const q = readQuery(packet);
    // CO (RFC 9824) is echoed only where a compact answer was possible: beside DO, in a zone this node signs.
    const compactOk = q.compactOk;
    q.compactOk = false;
    // RFC 7828: over UDP the option is ignored and never sent; over TCP a client's TIMEOUT is FORMERR (§3.2.1).
    if (q.keepalive !== KEEPALIVE.NONE && transport === 'tcp') {
      if (q.keepalive === KEEPALIVE.WITH_TIMEOUT && q.rcode !== RCODE.BADVERS) q.rcode = RCODE.FORMERR;
      q.tcpTimeout = keepaliveTimeout(tcpIdleMs);
    }
    if (q.rcode !== RCODE.NOERROR) return reject(packet, q, q.rcode, remote, transport);
    byType[q.qtype < 256 ? QTYPE_SLOT[q.qtype] : q.qtype === TYPE.CAA ? QTYPE_CAA : QTYPE_OTHER]++;
    try {
      const s = current();
      if (q.qclass !== CLASS_IN || q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR) return reject(packet, q, RCODE.REFUSED, remote, transport);
      if (q.qtype === TYPE.MAILA || q.qtype === TYPE.MAILB) return reject(packet, q, RCODE.NOTIMP, remote, transport);
      let node = s.zone.nodes.get(q.key);
      // RFC 4592: a name that does not exist may be a wildcard's (only zones that have one look).
      let synthesized = false;
      if (node === undefined && s.zone.wildcards) synthesized = (node = s.zone.wildcard(q.key)) !== undefined;
      const signed = q.dnssecOk ? s.signed : undefined;
      if (signed) q.compactOk = compactOk;
      let body: Body;
      let scope = 0;
      if (node === undefined) {
        const nx = s.zone.nxdomain(q.key);
        // Outside the zone: REFUSED, the question only (no referral, no SOA: nothing to amplify with).
        if (nx === undefined) return reject(packet, q, RCODE.REFUSED, remote, transport);
        body = signed ? signed.nxdomain(nx, q.key, compactOk) : nx;
      } else if (node.dynamic !== undefined && (q.qtype === TYPE.A || q.qtype === TYPE.AAAA)) {
        const variant = steered(s, packet, q, remote.address, node.dynamic);
        body = signed ? signedVariant(s, signed, variant, node, q) : variant.body;
        // Source prefix 0: located by the resolver, and the answer is for everyone behind it.
        scope = q.ecsSourcePrefix > 0 ? variant.scope : 0;
      } else {
        body = node.bodies.get(q.qtype) ?? node.other;
        if (signed) body = synthesized ? signed.synthesized(node, body, q.key, q.qtype) : body === node.nodata ? signed.nodata(node, q.key, q.qtype) : signed.answer(body, q.key);
      }
      return send(packet, q, body, scope, remote, transport);
    } catch (err) {
      stats.errors++;
      stats.servfail++;
      log.debug({ err }, 'query failed: SERVFAIL');
      return writeError(packet, q, RCODE.SERVFAIL, udpSize);
    }
  }

  async function prepare(state: ServingState, sample: readonly { packet: Buffer; address: string }[]): Promise<void> {
    const s = current.prepare(state);
    // A signed zone's fixed answers are signed before the state answers (their signatures, mostly, from the signer's cache).
    if (s.signed) await signAhead(s, s.signed);
    for (let i = 0; i < sample.length; i++) {
      // A slice at a time: queries arriving meanwhile are answered from the current state in between.
      if (i % PREPARE_SLICE === PREPARE_SLICE - 1) await new Promise((r) => setImmediate(r));
      const { packet, address } = sample[i];
      const q = readQuery(packet);
      if (q.rcode !== RCODE.NOERROR || (q.qtype !== TYPE.A && q.qtype !== TYPE.AAAA)) continue;
      const node = s.zone.nodes.get(q.key);
      if (node?.dynamic === undefined) continue;
      try {
        const variants = steered.warm(s, packet, q, address, node.dynamic);
        if (q.dnssecOk && s.signed) for (const v of variants) signedVariant(s, s.signed, v, node, q);
      } catch (err) {
        log.debug({ err }, 'preparing an answer failed; it is made when asked');
      }
    }
    current.adopt(s);
  }

  return Object.assign(respond, { stats, rrl: replies.rrl, prepare });
}

/** A steered answer's signed twin: NODATA with its NSEC, or the records signed with the service's TTL (the one served may be lower). */
function signedVariant(s: Served, signed: SignedZone, variant: Variant, node: ZoneNode, q: Query): Body {
  const generation = signed.generation();
  if (variant.signedIn === generation) return variant.signed!;
  const body = variant.body === node.nodata ? signed.nodata(node, q.key, q.qtype) : signed.answer(variant.body, q.key, s.snapshot.services.get(node.dynamic!.service)?.ttl);
  variant.signed = body;
  variant.signedIn = generation;
  return body;
}

/** Every fixed answer of the zone and its NODATA, signed; a slice of names per event-loop turn (a zone may have thousands). */
async function signAhead(s: Served, signed: SignedZone): Promise<void> {
  let n = 0;
  for (const [key, node] of s.zone.nodes) {
    if (++n % PREPARE_SLICE === 0) await new Promise((r) => setImmediate(r));
    for (const body of node.bodies.values()) if (body !== node.nodata) signed.answer(body, key);
    signed.nodata(node, key, TYPE.TXT);
  }
}

/** Queries replayed per event-loop turn when a state is prepared ahead. */
const PREPARE_SLICE = 16;

/** The keepalive TIMEOUT for an idle timeout in ms: 100 ms units, at most 65535 (about 1.8 hours). */
function keepaliveTimeout(idleMs = 0): number {
  const units = Math.floor(idleMs / 100);
  return units > 0xffff ? 0xffff : units > 0 ? units : 0;
}
