/**
 * Prefix math for IPv4 and IPv6 without strings or regexes on the hot path.
 * An address is its big-endian 32-bit words: one for IPv4, four for IPv6.
 */

export type Address = { readonly family: 4 | 6; readonly words: readonly number[] };
export type Network = { readonly address: Address; readonly length: number };

/** Parses a dotted quad or an IPv6 address (no zone id); undefined when it is neither. */
export function parseAddress(text: string): Address | undefined {
  if (text.indexOf(':') === -1) {
    const v4 = parseIPv4(text, 0, text.length);
    return v4 === undefined ? undefined : { family: 4, words: [v4] };
  }
  const words = parseIPv6(text);
  return words === undefined ? undefined : { family: 6, words };
}

/**
 * Parses `address/length`, clearing host bits. An IPv4-mapped IPv6 network
 * (inside ::ffff:0:0/96) becomes the IPv4 network it names.
 */
export function parseNetwork(cidr: string): Network | undefined {
  const slash = cidr.indexOf('/');
  if (slash === -1) return undefined;
  const parsed = parseAddress(cidr.slice(0, slash));
  const lenText = cidr.slice(slash + 1);
  if (parsed === undefined || !isDecimal(lenText)) return undefined;
  let address = parsed;
  let length = Number(lenText);
  if (length > bitLength(address.family)) return undefined;
  if (length >= 96 && isMappedIPv4(address)) {
    address = ipv4(address.words[3]);
    length -= 96;
  }
  return { address: mask(address, length), length };
}

export function bitLength(family: 4 | 6): 32 | 128 {
  return family === 4 ? 32 : 128;
}

export function ipv4(word: number): Address {
  return { family: 4, words: [word >>> 0] };
}

/** ::ffff:a.b.c.d */
export function isMappedIPv4(a: Address): boolean {
  return a.family === 6 && a.words[0] === 0 && a.words[1] === 0 && a.words[2] === 0xffff;
}

export function formatIPv4(word: number): string {
  return `${word >>> 24}.${(word >>> 16) & 255}.${(word >>> 8) & 255}.${word & 255}`;
}

/** Bit `i` of the address, counting from the most significant. */
export function bitAt(a: Address, i: number): 0 | 1 {
  return ((a.words[i >>> 5] >>> (31 - (i & 31))) & 1) as 0 | 1;
}

/** How many leading bits two addresses of one family share (32 or 128 when equal). */
export function commonPrefixLength(a: Address, b: Address): number {
  for (let w = 0; w < a.words.length; w++) {
    const diff = (a.words[w] ^ b.words[w]) >>> 0;
    if (diff !== 0) return w * 32 + Math.clz32(diff);
  }
  return a.words.length * 32;
}

export function mask(a: Address, length: number): Address {
  const words = a.words.map((word, w) => {
    const keep = Math.min(32, Math.max(0, length - w * 32));
    return keep === 0 ? 0 : (word & (0xffffffff << (32 - keep))) >>> 0;
  });
  return { family: a.family, words };
}

export function contains(net: Network, a: Address): boolean {
  return net.address.family === a.family && commonPrefixLength(net.address, a) >= net.length;
}

/**
 * The ECS scope for `a` (RFC 7871): `base` is the prefix length of the block
 * around `a` that gives its facts (the matched override or GeoIP record); every
 * override of the same family that does not contain `a` but lies inside that
 * block answers differently, so the scope grows until the block no longer
 * reaches it (one bit past the first bit where `a` and the override differ).
 * Overrides that contain `a` are the answer or less specific than it.
 */
export function narrowScope(a: Address, base: number, nets: readonly Network[]): number {
  let scope = base;
  for (const net of nets) {
    if (net.address.family !== a.family) continue;
    const common = commonPrefixLength(net.address, a);
    if (common < net.length && common + 1 > scope) scope = common + 1;
  }
  return scope;
}

function isDecimal(s: string): boolean {
  if (s.length === 0 || s.length > 3) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Dotted quad in text[start, end) as an unsigned 32-bit number; no leading zeros (octal ambiguity). */
function parseIPv4(text: string, start: number, end: number): number | undefined {
  let word = 0;
  let parts = 0;
  let i = start;
  while (parts < 4) {
    let value = 0;
    let digits = 0;
    for (; i < end; i++) {
      const c = text.charCodeAt(i);
      if (c < 48 || c > 57) break;
      if (digits === 1 && value === 0) return undefined;
      value = value * 10 + (c - 48);
      if (++digits > 3) return undefined;
    }
    if (digits === 0 || value > 255) return undefined;
    word = word * 256 + value;
    parts++;
    if (parts < 4) {
      if (i >= end || text.charCodeAt(i) !== 46) return undefined;
      i++;
    }
  }
  return i === end ? word : undefined;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}

/** Sixteen-bit groups, `::` and a trailing dotted quad; four words out. */
function parseIPv6(text: string): number[] | undefined {
  const n = text.length;
  const groups: number[] = [];
  let gap = -1;
  let i = 0;
  if (n < 2) return undefined;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return undefined;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    const start = i;
    let value = 0;
    let digits = 0;
    for (; i < n; i++) {
      const h = hexValue(text.charCodeAt(i));
      if (h < 0) break;
      value = value * 16 + h;
      if (++digits > 4) return undefined;
    }
    if (i < n && text.charCodeAt(i) === 46) {
      const v4 = parseIPv4(text, start, n);
      if (v4 === undefined) return undefined;
      groups.push(v4 >>> 16, v4 & 0xffff);
      break;
    }
    if (digits === 0) return undefined;
    groups.push(value);
    if (i === n) break;
    if (text.charCodeAt(i) !== 58) return undefined;
    i++;
    if (i < n && text.charCodeAt(i) === 58) {
      if (gap !== -1) return undefined;
      gap = groups.length;
      i++;
    } else if (i === n) return undefined;
  }
  const count = groups.length;
  if (gap === -1 ? count !== 8 : count > 7) return undefined;
  const words = [0, 0, 0, 0];
  for (let k = 0, j = 0; k < 8; k++) {
    const g = gap !== -1 && k >= gap && k < gap + 8 - count ? 0 : groups[j++];
    words[k >>> 1] = (k & 1) === 0 ? g * 0x10000 : words[k >>> 1] + g;
  }
  return words;
}
