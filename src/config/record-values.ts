// Static records' names and values, read from their text as plain data: what
// the zone schema validates (config/records.ts) and what the DNS compiler
// encodes (dns/zone-records.ts) are the same parse. No zod here: a DNS worker
// thread compiles zones and carries no zod (see config/rrl-defaults.ts).

import { isIPv4, isIPv6 } from 'node:net';
import { parseAddress } from '../geo/prefix.js';

export const RECORD_TYPES = ['A', 'AAAA', 'CNAME', 'TXT', 'CAA', 'MX', 'SRV'] as const;
export type RecordType = (typeof RECORD_TYPES)[number];
export const RECORD_TYPE_CODE: Readonly<Record<RecordType, number>> = { A: 1, AAAA: 28, CNAME: 5, TXT: 16, CAA: 257, MX: 15, SRV: 33 };

/** A static RRset's TTL when its entry gives none. */
export const DEFAULT_RECORD_TTL = 300;
/** Octets of one TXT value, split into character-strings of at most 255 (RFC 1035 §3.3.14). */
export const MAX_TXT_OCTETS = 4000;
/** A TXT character-string holds at most this many octets; longer values are split. */
export const TXT_STRING_OCTETS = 255;

/** One value as dns2 encodes it (the fields of a `Packet.Resource` after name, type, class and TTL). */
export type RecordData =
  | { readonly address: string }
  | { readonly domain: string }
  | { readonly data: readonly Buffer[] }
  | { readonly flags: number; readonly tag: string; readonly value: string }
  | { readonly priority: number; readonly exchange: string }
  | { readonly priority: number; readonly weight: number; readonly port: number; readonly target: string };

export type ParsedValue = {
  readonly data: RecordData;
  /** One spelling per value, to find the same value written twice. */
  readonly key: string;
  /** RDATA octets on the wire (names uncompressed). */
  readonly rdataLength: number;
};

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;
const U16 = /^\d{1,5}$/;

/** Octets of a name in wire format (the root label included); `''` is the root. */
export const nameOctets = (name: string) => (name === '' ? 1 : name.split('.').reduce((n, l) => n + l.length + 1, 1));

const within = (name: string, apex: string) => name === apex || name.endsWith(`.${apex}`);

/**
 * A record's owner as an absolute name (lowercase, no final dot): `@` is the
 * apex, a name ending in a dot is absolute (and must be inside the zone), any
 * other is relative to the apex. Only the leftmost label may be `*` (RFC 4592).
 */
export function ownerName(text: string, apex: string): { name: string } | { error: string } {
  const t = text.trim().toLowerCase();
  if (t === '@') return { name: apex };
  if (t === '' || t === '.') return { error: 'must be a name relative to the apex (www), @ for the apex, or absolute with a final dot (www.gslb.example.com.)' };
  let name: string;
  if (t.endsWith('.')) {
    name = t.slice(0, -1);
    if (!within(name, apex)) return { error: `${t} is outside the zone ${apex}` };
  } else {
    if (within(t, apex))
      return { error: `ends with the apex but has no final dot, so it would be ${t}.${apex}: write ${t.slice(0, -apex.length - 1) || '@'} or ${t}.` };
    name = `${t}.${apex}`;
  }
  const bad = labelsError(name.slice(0, name.length - apex.length).replace(/\.$/, ''), true);
  if (bad) return { error: bad };
  if (nameOctets(name) > 255) return { error: 'longer than a DNS name may be (255 octets)' };
  return { name };
}

function labelsError(relative: string, wildcard: boolean): string | undefined {
  if (relative === '') return undefined;
  const labels = relative.split('.');
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l === '*') {
      if (!wildcard || i > 0) return 'a * label is a wildcard only as the leftmost label (*.name), RFC 4592';
      continue;
    }
    if (!LABEL.test(l)) return `label "${l}" must be 1 to 63 of a-z, 0-9, _ and - (not at either end)`;
  }
  return undefined;
}

/**
 * A name inside a value (CNAME, MX and SRV targets): always fully qualified,
 * the final dot optional, `@` for the apex (given `apex`; left as `@` without),
 * `.` for the root where `root` allows it (a null MX, RFC 7505; SRV's "no such service").
 */
function targetName(text: string, apex: string | undefined, root: boolean): { name: string } | { error: string } {
  const t = text.toLowerCase();
  if (t === '@') return { name: apex ?? '@' };
  if (t === '.') return root ? { name: '' } : { error: 'must be a host name, not the root' };
  const name = t.replace(/\.$/, '');
  if (!name.includes('.')) return { error: `"${text}" must be a fully qualified name such as web.gslb.example.com (names in values are not relative to the apex; @ is the apex)` };
  const bad = labelsError(name, false);
  if (bad) return { error: bad };
  if (nameOctets(name) > 255) return { error: 'longer than a DNS name may be (255 octets)' };
  return { name };
}

const u16 = (s: string) => (U16.test(s) && Number(s) <= 65535 ? Number(s) : undefined);

/** Parses one value of `type` from its text; `apex` resolves `@` in target names (syntax alone without it). */
export function parseRecordValue(type: RecordType, text: string, apex?: string): ParsedValue | { error: string } {
  switch (type) {
    case 'A': {
      if (isIPv4(text)) return { data: { address: text }, key: text, rdataLength: 4 };
      return { error: isIPv6(text) ? `${text} is an IPv6 address: use type AAAA` : `"${text}" must be an IPv4 address such as 192.0.2.10` };
    }
    case 'AAAA': {
      if (isIPv6(text) && !text.includes('%')) return { data: { address: text }, key: parseAddress(text)?.words.join(':') ?? text, rdataLength: 16 };
      return { error: isIPv4(text) ? `${text} is an IPv4 address: use type A` : `"${text}" must be an IPv6 address such as 2001:db8::10` };
    }
    case 'CNAME': {
      const t = targetName(text.trim(), apex, false);
      return 'error' in t ? t : { data: { domain: t.name }, key: t.name, rdataLength: nameOctets(t.name) };
    }
    case 'TXT':
      return parseTxt(text);
    case 'CAA':
      return parseCaa(text);
    case 'MX': {
      const m = /^(\S+)\s+(\S+)$/.exec(text.trim());
      if (!m) return { error: `"${text}" must be "PREFERENCE EXCHANGE", such as "10 mail.example.com."` };
      const priority = u16(m[1]);
      if (priority === undefined) return { error: `preference "${m[1]}" must be a whole number from 0 to 65535` };
      const t = targetName(m[2], apex, true);
      if ('error' in t) return { error: `exchange: ${t.error}` };
      return { data: { priority, exchange: t.name }, key: `${priority} ${t.name}`, rdataLength: 2 + nameOctets(t.name) };
    }
    case 'SRV':
      return parseSrv(text, apex);
  }
}

function parseTxt(text: string): ParsedValue | { error: string } {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > MAX_TXT_OCTETS) return { error: `${bytes.length} octets: a TXT value holds at most ${MAX_TXT_OCTETS} (split into strings of 255)` };
  // Longer than one character-string: split into strings of 255 octets in one record, as DKIM keys need.
  const data: Buffer[] = [];
  for (let i = 0; i === 0 || i < bytes.length; i += TXT_STRING_OCTETS) data.push(bytes.subarray(i, i + TXT_STRING_OCTETS));
  return { data: { data }, key: text, rdataLength: bytes.length + data.length };
}

function parseCaa(text: string): ParsedValue | { error: string } {
  const m = /^(\S+)\s+(\S+)\s+(.*)$/.exec(text.trim());
  if (!m) return { error: `"${text}" must be "FLAGS TAG VALUE", such as '0 issue "letsencrypt.org"'` };
  const flags = u16(m[1]);
  // RFC 8659 §4.1: bit 0 (128) is Issuer Critical; the others are reserved.
  if (flags !== 0 && flags !== 128) return { error: `flags "${m[1]}" must be 0, or 128 (issuer critical); the other bits are reserved (RFC 8659)` };
  const tag = m[2].toLowerCase();
  if (!/^[a-z0-9]{1,15}$/.test(tag)) return { error: `tag "${m[2]}" must be 1 to 15 letters or digits, such as issue, issuewild or iodef` };
  let value = m[3].trim();
  if (value.startsWith('"')) {
    if (value.length < 2 || !value.endsWith('"') || value.slice(1, -1).includes('"')) return { error: `value ${value} must be one quoted string` };
    value = value.slice(1, -1);
  } else if (/\s/.test(value)) return { error: `value "${value}" has spaces: quote it` };
  if ([...value].some((c) => c < ' ' || c > '~')) return { error: 'value must be printable ASCII' };
  if ((tag === 'issue' || tag === 'issuewild') && !/^\s*([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+)?\s*(;.*)?$/i.test(value))
    return { error: `${tag} value "${value}" must be a CA's domain (letsencrypt.org), optionally with "; parameters", or ";" for none` };
  if (tag === 'iodef' && !/^(mailto:\S+@\S+|https?:\/\/\S+)$/.test(value)) return { error: `iodef value "${value}" must be a mailto: or http(s):// URL` };
  if (value.length > 1024) return { error: 'value longer than 1024 octets' };
  return { data: { flags, tag, value }, key: `${flags} ${tag} ${value}`, rdataLength: 2 + tag.length + value.length };
}

function parseSrv(text: string, apex: string | undefined): ParsedValue | { error: string } {
  const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$/.exec(text.trim());
  if (!m) return { error: `"${text}" must be "PRIORITY WEIGHT PORT TARGET", such as "10 5 443 api.gslb.example.com."` };
  const [priority, weight, port] = [u16(m[1]), u16(m[2]), u16(m[3])];
  for (const [field, v, s] of [['priority', priority, m[1]], ['weight', weight, m[2]], ['port', port, m[3]]] as const)
    if (v === undefined) return { error: `${field} "${s}" must be a whole number from 0 to 65535` };
  const t = targetName(m[4], apex, true);
  if ('error' in t) return { error: `target: ${t.error}` };
  const data = { priority: priority!, weight: weight!, port: port!, target: t.name };
  return { data, key: `${priority} ${weight} ${port} ${t.name}`, rdataLength: 6 + nameOctets(t.name) };
}
