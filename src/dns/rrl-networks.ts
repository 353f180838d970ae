// Which client network a reply's destination belongs to, for RRL: IPv4
// addresses as unsigned integers (no string built per query), IPv6 addresses
// mapped to their network's key through a bounded cache, and the networks
// exempt from limiting.

import { parseAddress } from './address.js';

/** An exempt IPv4 network: the address shifted right by `shift` (32 - prefix) equals `net`. */
export type Exempt4 = { net: number; shift: number };
type Exempt6 = { bytes: Uint8Array; prefix: number };

const V6_CACHE = 10_000;

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

/** The `exempt` setting (CIDR text) split by family; entries that are not addresses are skipped. */
export function parseExempt(list: readonly string[]): { v4: Exempt4[]; v6: Exempt6[] } {
  const v4: Exempt4[] = [];
  const v6: Exempt6[] = [];
  for (const net of list) {
    const [text, len] = net.split('/');
    const bytes = parseAddress(text);
    if (!bytes) continue;
    const prefix = Number(len);
    if (bytes.length === 4) {
      const shift = 32 - prefix;
      v4.push({ net: shift === 32 ? 0 : toInt(bytes) >>> shift, shift });
    } else v6.push({ bytes, prefix });
  }
  return { v4, v6 };
}

export function isExempt4(exempt4: readonly Exempt4[], n: number): boolean {
  for (const e of exempt4) if ((e.shift === 32 ? 0 : n >>> e.shift) === e.net) return true;
  return false;
}

export interface V6Networks {
  /** The network key (8 octets as latin1, without the kind) of an IPv6 source; '' when exempt, undefined when not IPv6. */
  readonly key: (address: string) => string | undefined;
  /** New prefix length and exempt networks; call `clear()` too when either changed. */
  configure(prefix: number, exempt: Exempt6[]): void;
  clear(): void;
}

export function createV6Networks(): V6Networks {
  let prefix6 = 56;
  let exempt6: Exempt6[] = [];
  /** IPv6 source address → its network's key (without the kind), '' when exempt. */
  const v6Keys = new Map<string, string>();

  function key(address: string): string | undefined {
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

  return {
    key,
    configure(prefix, exempt) {
      prefix6 = prefix;
      exempt6 = exempt;
    },
    clear: () => v6Keys.clear(),
  };
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
