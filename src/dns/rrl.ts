// Response rate limiting (RRL) of UDP replies, after BIND's and Knot's: a
// token bucket per (client network, kind of reply). A spoofed source gets at
// most `rate` full replies a second aimed at it; past that, every `slip`-th
// reply goes out empty with TC set (a real resolver retries over TCP, where
// the source cannot be spoofed) and the rest are dropped.
//
// O(1) per reply: IPv4 networks are integer keys (no string built per query);
// IPv6 addresses map to a network key through a small bounded cache
// (rrl-networks.ts). The table of buckets is bounded (rrl-table.ts).

import { RRL_DEFAULTS as DEFAULTS } from '../config/rrl-defaults.js';
import type { RrlDoc } from '../config/schema.js';
import { createV6Networks, ipv4, isExempt4, parseExempt, type Exempt4 } from './rrl-networks.js';
import { createBucketTable, type Bucket } from './rrl-table.js';

export type RrlSettings = RrlDoc;
export const RRL_DEFAULTS: RrlSettings = { ...DEFAULTS, exempt: [...DEFAULTS.exempt] };

/** Kinds of reply, each with its own bucket (BIND's responses, nxdomains, errors). */
export const KIND = { ANSWER: 0, NXDOMAIN: 1, ERROR: 2 } as const;
const KINDS = 3;

/** What to do with a reply. */
export const VERDICT = { SEND: 0, SLIP: 1, DROP: 2 } as const;

export type RrlStats = {
  /** Replies not sent because their client network was over its rate. */
  dropped: number;
  /** Replies sent empty with TC set instead (every `slip`-th one over the rate). */
  slipped: number;
  /** Client networks forgotten because the table was full. */
  evicted: number;
};

export interface RateLimiter {
  /** Counts one reply of `kind` to `address` at `now` (ms); says whether to send it, slip it or drop it. */
  check(address: string, kind: number, now: number): number;
  /** New settings; buckets are kept unless the prefix lengths change. */
  configure(settings: RrlSettings): void;
  readonly settings: RrlSettings;
  readonly stats: RrlStats;
  /** Buckets in the table now. */
  size(): number;
}

/**
 * `share`: the part of the node's traffic this limiter sees (0 < share ≤ 1; one
 * of N workers: 1/N). Every rate is multiplied by it, never below 1/s, so that
 * N limiters together allow what one would (a client's queries spread over the
 * workers; the limit is per worker, divided).
 */
export function createRateLimiter(initial: RrlSettings = RRL_DEFAULTS, share = 1): RateLimiter {
  if (!(share > 0 && share <= 1)) throw new Error(`RRL share must be in (0, 1], not ${share}`);
  let settings = initial;
  const shared = (rate: number) => (share === 1 ? rate : Math.max(1, rate * share));
  const rates = new Float64Array(KINDS);
  let slip = 0;
  let shift4 = 8;
  let max = 0;
  let exempt4: Exempt4[] = [];
  const stats: RrlStats = { dropped: 0, slipped: 0, evicted: 0 };
  const table = createBucketTable(stats);
  const { v4, v6, makeRoom } = table;
  const networks6 = createV6Networks();
  const key6 = networks6.key;

  function configure(next: RrlSettings): void {
    const prefixesChanged = next.ipv4PrefixLength !== settings.ipv4PrefixLength || next.ipv6PrefixLength !== settings.ipv6PrefixLength;
    const exemptChanged = next.exempt.join() !== settings.exempt.join();
    settings = next;
    rates[KIND.ANSWER] = shared(next.responsesPerSecond);
    rates[KIND.NXDOMAIN] = shared(next.nxdomainsPerSecond ?? next.responsesPerSecond);
    rates[KIND.ERROR] = shared(next.errorsPerSecond ?? next.responsesPerSecond);
    slip = next.slip;
    shift4 = 32 - next.ipv4PrefixLength;
    max = next.maxTableSize;
    const exempt = parseExempt(next.exempt);
    exempt4 = exempt.v4;
    networks6.configure(next.ipv6PrefixLength, exempt.v6);
    if (prefixesChanged || exemptChanged) {
      table.clear();
      networks6.clear();
    }
  }

  function check(address: string, kind: number, now: number): number {
    const rate = rates[kind];
    let bucket: Bucket | undefined;
    const n = ipv4(address);
    if (n >= 0) {
      if (exempt4.length > 0 && isExempt4(exempt4, n)) return VERDICT.SEND;
      const key = (shift4 === 32 ? 0 : n >>> shift4) * KINDS + kind;
      bucket = v4.get(key);
      if (bucket === undefined) {
        if (v4.size + v6.size >= max) makeRoom(now, max);
        bucket = { tokens: rate, last: now, slip: 0 };
        v4.set(key, bucket);
      }
    } else {
      const net = key6(address);
      if (!net) return VERDICT.SEND; // exempt, or not an address we can place
      const key = net + String.fromCharCode(kind);
      bucket = v6.get(key);
      if (bucket === undefined) {
        if (v4.size + v6.size >= max) makeRoom(now, max);
        bucket = { tokens: rate, last: now, slip: 0 };
        v6.set(key, bucket);
      }
    }
    return spend(bucket, rate, slip, now, stats);
  }

  configure(initial);
  return {
    check,
    configure,
    get settings() {
      return settings;
    },
    stats,
    size: () => v4.size + v6.size,
  };
}

/**
 * The token bucket's verdict on one more reply: refilled at `rate` a second
 * up to one second's worth, a token spent if there is one; if not, every
 * `slip`-th reply is slipped (0: none) and the others dropped.
 */
function spend(bucket: Bucket, rate: number, slip: number, now: number, stats: RrlStats): number {
  const elapsed = now - bucket.last;
  if (elapsed > 0) {
    const tokens = bucket.tokens + (elapsed * rate) / 1000;
    bucket.tokens = tokens < rate ? tokens : rate;
    bucket.last = now;
  }
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return VERDICT.SEND;
  }
  if (slip > 0 && ++bucket.slip >= slip) {
    bucket.slip = 0;
    stats.slipped++;
    return VERDICT.SLIP;
  }
  stats.dropped++;
  return VERDICT.DROP;
}
