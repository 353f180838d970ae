// Compact denial of existence (RFC 9824, as Cloudflare and NS1 answer): no
// NSEC chain, so nothing to walk. A name that does not exist is answered as
// NODATA with an NSEC at the name itself whose next name is its immediate
// successor (`\000.name`) and whose bitmap says RRSIG, NSEC and NXNAME; the
// NXDOMAIN rcode is restored for a client that set the Compact Answers OK
// flag. A name that exists but lacks the type asked for gets the same shape
// of NSEC listing the types it has. Either covers exactly the one name.
import type { Rr } from './sign.js';
import { DNSSEC_TYPE, nsecRdata, typeBitmap } from './rdata.js';

/** The EDNS header flag a client sets to have NXDOMAIN back with a compact answer (RFC 9824 §4: CO, the bit after DO). */
export const FLAG_CO = 0x4000;

/**
 * The NSEC that denies `owner`: with `present` the types it has (NODATA), or
 * `'nxname'` when it does not exist. Its TTL is the negative TTL (RFC 9077:
 * the lower of the SOA's TTL and its minimum).
 */
export function compactNsec(owner: string, ttl: number, present: readonly number[] | 'nxname'): Rr {
  const base = owner === '.' || owner === '' ? '' : owner.replace(/\.$/, '');
  const next = base ? `\\000.${base}` : '\\000';
  const types = present === 'nxname' ? [DNSSEC_TYPE.RRSIG, DNSSEC_TYPE.NSEC, DNSSEC_TYPE.NXNAME] : [...present, DNSSEC_TYPE.RRSIG, DNSSEC_TYPE.NSEC];
  return { name: owner, type: DNSSEC_TYPE.NSEC, ttl, rdata: nsecRdata(next, types) };
}

const NXNAME_BITMAP = typeBitmap([DNSSEC_TYPE.RRSIG, DNSSEC_TYPE.NSEC, DNSSEC_TYPE.NXNAME]);

/**
 * `compactNsec(owner, ttl, 'nxname')` for an owner already in canonical wire
 * form (`wire`; `owner` its presentation form): what the responder makes for
 * every name that does not exist, with nothing encoded twice. Undefined when
 * `\000.owner` would pass 255 octets: no compact NSEC exists for the name.
 */
export function nxnameNsec(owner: string, wire: Buffer, ttl: number): Rr | undefined {
  if (wire.length + 2 > 255) return undefined;
  const rdata = Buffer.allocUnsafe(2 + wire.length + NXNAME_BITMAP.length);
  rdata[0] = 1;
  rdata[1] = 0;
  wire.copy(rdata, 2);
  NXNAME_BITMAP.copy(rdata, 2 + wire.length);
  return { name: owner, owner: wire, type: DNSSEC_TYPE.NSEC, ttl, rdata };
}
