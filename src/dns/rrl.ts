// Response rate limiting (RRL) of UDP replies, after BIND's and Knot's: a
// token bucket per (client network, kind of reply). A spoofed source gets at
// most `rate` full replies a second aimed at it; past that, every `slip`-th
// reply goes out empty with TC set (a real resolver retries over TCP, where
// the source cannot be spoofed) and the rest are dropped.
//
// O(1) per reply: IPv4 networks are integer keys (no string built per query);
// IPv6 addresses map to a network key through a small bounded cache.

import { rrlSchema, type RrlDoc } from '../config/schema.js';
import { parseAddress } from './wire.js';

export type RrlSettings = RrlDoc;
export const RRL_DEFAULTS: RrlSettings = rrlSchema.parse({});

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

type Bucket = { tokens: number; last: number; slip: number };
type Exempt4 = { net: number; shift: number };
type Exempt6 = { bytes: Uint8Array; prefix: number };

const V6_CACHE = 10_000;
/** A bucket untouched this long is full again: forgetting it changes nothing. */
const IDLE_MS = 1000;

export function createRateLimiter(initial: RrlSettings = RRL_DEFAULTS): RateLimiter {
  let settings = initial;
  const rates = new Float64Array(KINDS);
  let slip = 0;
  let shift4 = 8;
  let prefix6 = 56;
  let max = 0;
  let exempt4: Exempt4[] = [];
  let exempt6: Exempt6[] = [];
  const v4 = new Map<number, Bucket>();
  const v6 = new Map<string, Bucket>();
  /** IPv6 source address → its network's key (without the kind), '' when exempt. */
  const v6Keys = new Map<string, string>();
  let lastSweep = -Infinity;
  const stats: RrlStats = { dropped: 0, slipped: 0, evicted: 0 };

  function configure(next: RrlSettings): void {
    const prefixesChanged = next.ipv4PrefixLength !== settings.ipv4PrefixLength || next.ipv6PrefixLength !== settings.ipv6PrefixLength;
    const exemptChanged = next.exempt.join() !== settings.exempt.join();
    settings = next;
    rates[KIND.ANSWER] = next.responsesPerSecond;
    rates[KIND.NXDOMAIN] = next.nxdomainsPerSecond ?? next.responsesPerSecond;
    rates[KIND.ERROR] = next.errorsPerSecond ?? next.responsesPerSecond;
    slip = next.slip;
    shift4 = 32 - next.ipv4PrefixLength;
    prefix6 = next.ipv6PrefixLength;
    max = next.maxTableSize;
    exempt4 = [];
    exempt6 = [];
    for (const net of next.exempt) {
      const [text, len] = net.split('/');
      const bytes = parseAddress(text);
      if (!bytes) continue;
      const prefix = Number(len);
      if (bytes.length === 4) {
        const shift = 32 - prefix;
        exempt4.push({ net: shift === 32 ? 0 : toInt(bytes) >>> shift, shift });
      } else exempt6.push({ bytes, prefix });
    }
    if (prefixesChanged || exemptChanged) {
      v4.clear();
      v6.clear();
      v6Keys.clear();
    }
  }

  function isExempt4(n: number): boolean {
    for (const e of exempt4) if ((e.shift === 32 ? 0 : n >>> e.shift) === e.net) return true;
    return false;
  }

  function key6(address: string): string | undefined {
    let key = v6Keys.get(address);
    if (key !== undefined) return key;
    const bytes = parseAddress(address);
    if (!bytes || bytes.length !== 16) return undefined;
    key = '';
    if (!exempt6.some((e) => sameNetwork(bytes, e.bytes, e.prefix))) {
      const net = new Uint8Array(8);
      for (let i = 0; i < 8; i++) {
        const bits = prefix6 - i * 8;
        net[i] = bits >= 8 ? bytes[i] : bits > 0 ? bytes[i] & (0xff << (8 - bits)) : 0;
      }
      key = String.fromCharCode(...net);
    }
    if (v6Keys.size >= V6_CACHE) v6Keys.delete(v6Keys.keys().next().value!);
    v6Keys.set(address, key);
    return key;
  }

  // Room for one more bucket: first forget idle ones (at most once a second, it is a full pass), then the oldest.
  function makeRoom(now: number): void {
    if (now - lastSweep >= IDLE_MS) {
      lastSweep = now;
      for (const [k, b] of v4) if (now - b.last >= IDLE_MS) v4.delete(k);
      for (const [k, b] of v6) if (now - b.last >= IDLE_MS) v6.delete(k);
    }
    while (v4.size + v6.size >= max && v4.size + v6.size > 0) {
      stats.evicted++;
      const map: Map<number | string, Bucket> = v4.size >= v6.size ? v4 : v6;
      map.delete(map.keys().next().value!);
    }
  }

  function check(address: string, kind: number, now: number): number {
    const rate = rates[kind];
    let bucket: Bucket | undefined;
    const n = ipv4(address);
    if (n >= 0) {
      if (exempt4.length > 0 && isExempt4(n)) return VERDICT.SEND;
      const key = (shift4 === 32 ? 0 : n >>> shift4) * KINDS + kind;
      bucket = v4.get(key);
      if (bucket === undefined) {
        if (v4.size + v6.size >= max) makeRoom(now);
        bucket = { tokens: rate, last: now, slip: 0 };
        v4.set(key, bucket);
      }
    } else {
      const net = key6(address);
      if (!net) return VERDICT.SEND; // exempt, or not an address we can place
      const key = net + String.fromCharCode(kind);
      bucket = v6.get(key);
      if (bucket === undefined) {
        if (v4.size + v6.size >= max) makeRoom(now);
        bucket = { tokens: rate, last: now, slip: 0 };
        v6.set(key, bucket);
      }
    }
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

/** A dotted quad (or an IPv4-mapped IPv6 address) as an unsigned 32-bit number; -1 for anything else. */
export function ipv4(s: string): number {
  let i = 0;
  const len = s.length;
  // ::ffff:a.b.c.d from a dual-stack socket
  if (len > 7 && s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58 || s.charCodeAt(6) !== 58 || s.slice(2, 6).toLowerCase() !== 'ffff') return -1;
    i = 7;
  }
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else if (c === 46 && digits > 0 && dots < 3) {
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return n * 256 + part;
}

const toInt = (b: Uint8Array) => ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;

function sameNetwork(a: Uint8Array, b: Uint8Array, prefix: number): boolean {
  const full = prefix >> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rest = prefix & 7;
  if (rest === 0) return true;
  const m = 0xff << (8 - rest);
  return (a[full] & m) === (b[full] & m);
}
