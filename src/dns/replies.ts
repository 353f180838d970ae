// The last step of every reply: over UDP, response rate limiting decides
// whether it goes out in full, empty with TC set (slipped) or not at all; the
// transport sets its size limit (the client's EDNS size over UDP, 64 KiB over
// TCP, which is never limited); and the rcode is counted once it is sent.

import { udpLimit } from './edns.js';
import { countRcode, type ResponderStats } from './responder-stats.js';
import { writeError, writeResponse } from './response-writer.js';
import { createRateLimiter, KIND, RRL_DEFAULTS, VERDICT, type RateLimiter, type RrlSettings } from './rrl.js';
import { DROP, RCODE, type Body, type Query } from './wire.js';

export type Transport = 'udp' | 'tcp';

/** Where a query came from: a dgram RemoteInfo or a TCP socket's remote end. */
export type Remote = { readonly address: string; readonly family?: string | number };

export type RepliesOptions = {
  stats: ResponderStats;
  /** Our EDNS UDP payload size, advertised and the largest UDP reply we send. */
  udpPayloadSize: number;
  /** Settings that win over the zone's `rrl` (which win over the defaults). */
  rrl: Partial<RrlSettings>;
  /** The share of the node's traffic this responder answers: RRL's rates are multiplied by it. Default 1. */
  rrlShare?: number;
  /** The clock RRL reads, in ms. Default: `performance.now`, read once per event-loop turn. */
  now?: () => number;
};

export interface Replies {
  /** The reply to an answerable query with `body`; `undefined` when RRL drops it. */
  readonly send: (packet: Buffer, q: Query, body: Body, scope: number, remote: Remote, transport: Transport) => Buffer | undefined;
  /** An error reply (the question only); `undefined` for DROP or when RRL drops it. */
  readonly reject: (packet: Buffer, q: Query, rcode: number, remote: Remote, transport: Transport) => Buffer | undefined;
  /** A new snapshot's `rrl` settings, under the options' own; the buckets are kept. */
  configure(zoneRrl: Partial<RrlSettings> | undefined): void;
  readonly rrl: RateLimiter;
}

const TCP_LIMIT = 65535;

export function createReplies(opts: RepliesOptions): Replies {
  const { stats } = opts;
  const udpSize = opts.udpPayloadSize;
  const rrlOverride = opts.rrl;
  const rrl = createRateLimiter({ ...RRL_DEFAULTS, ...rrlOverride }, opts.rrlShare);
  let rrlOn = rrl.settings.enabled;
  const now = opts.now ?? createTurnClock();

  function send(packet: Buffer, q: Query, body: Body, scope: number, remote: Remote, transport: Transport): Buffer | undefined {
    if (transport === 'udp' && rrlOn) {
      const verdict = limit(remote, body.nx === true || body.rcode === RCODE.NXDOMAIN ? KIND.NXDOMAIN : body.rcode === RCODE.NOERROR ? KIND.ANSWER : KIND.ERROR);
      // Slipped: the question, TC set, no records (an OPT when asked): no bigger than the query.
      if (verdict !== VERDICT.SEND) return verdict === VERDICT.SLIP ? writeResponse(packet, q, body, scope, udpSize, 0) : undefined;
    }
    const out = writeResponse(packet, q, body, scope, udpSize, transport === 'udp' ? udpLimit(q, udpSize) : TCP_LIMIT);
    countRcode(stats, body.rcode);
    if (out[2] & 0x02) stats.truncated++;
    return out;
  }

  function reject(packet: Buffer, q: Query, rcode: number, remote: Remote, transport: Transport): Buffer | undefined {
    if (rcode !== DROP && transport === 'udp' && rrlOn) {
      const verdict = limit(remote, KIND.ERROR);
      if (verdict !== VERDICT.SEND) return verdict === VERDICT.SLIP ? slipError(packet, q, rcode) : undefined;
    }
    countRcode(stats, rcode);
    return writeError(packet, q, rcode, udpSize);
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

  function configure(zoneRrl: Partial<RrlSettings> | undefined): void {
    rrl.configure({ ...RRL_DEFAULTS, ...zoneRrl, ...rrlOverride });
    rrlOn = rrl.settings.enabled;
  }

  return { send, reject, configure, rrl };
}

// Reading a clock can cost half as much as answering (~0.2 µs on a VM): by default one reading serves
// every datagram of one event-loop turn (libuv reads up to 32 per turn under load, one when idle).
function createTurnClock(): () => number {
  let turnTime = -1;
  const endTurn = () => {
    turnTime = -1;
  };
  return () => {
    if (turnTime < 0) {
      turnTime = performance.now();
      setImmediate(endTurn);
    }
    return turnTime;
  };
}
