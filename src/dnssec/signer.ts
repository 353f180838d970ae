// One key's signer: RRSIGs made once per distinct RRset content and kept
// (bounded, least recently used first out), so that an answer served again,
// to any client, costs no signing. DNS nodes sign answers with the active
// ZSK's; control signs the DNSKEY, CDS and CDNSKEY RRsets with each KSK's.
//
// Signature windows: inception an hour back (clocks that run slow), rounded
// down to the hour, and expiry `validity` later; a kept signature is made
// again once less than `refresh` of it is left, long before a resolver could
// hold an answer that outlives it. Rounding makes the signatures made within
// one hour share their window, which nothing depends on but keeps them
// comparable in tests and logs.
import { createHash } from 'node:crypto';
import type { SigningKey } from './keys.js';
import { DNSSEC_TYPE } from './rdata.js';
import { ownerWire, rrsigOf, type Rr, type SignatureWindow } from './sign.js';

export type SignerOptions = {
  /** The zone's apex: the signer's name in every RRSIG. */
  zone: string;
  /** The key that signs. */
  key: SigningKey;
  /** Seconds a signature is valid from its inception. Default 14 days. */
  validity?: number;
  /** A kept signature is made again when less than this is left of it (seconds). Default 3 days. */
  refresh?: number;
  /** How far inception is back-dated (seconds). Default 3600. */
  skew?: number;
  /** Signatures kept at most. Default 65,536. */
  maxEntries?: number;
  /** The clock, ms. */
  now?: () => number;
};

export const SIGNER_DEFAULTS = { validity: 14 * 86_400, refresh: 3 * 86_400, skew: 3600, maxEntries: 65_536 } as const;

export type SignerStats = { signed: number; reused: number; entries: number };

export interface Signer {
  readonly key: SigningKey;
  /** The RRSIG over `rrset` (served with the RRset's TTL), signed with `originalTtl` (default: the RRset's). */
  sign(rrset: readonly Rr[], originalTtl?: number): Rr;
  stats(): SignerStats;
}

export function createSigner(opts: SignerOptions): Signer {
  const { validity, refresh, skew, maxEntries } = { ...SIGNER_DEFAULTS, ...opts };
  if (refresh >= validity) throw new Error('a signature must be refreshed before it expires: refresh < validity');
  const now = () => Math.floor((opts.now ?? Date.now)() / 1000);
  const kept = new Map<string, { rdata: Buffer; expiration: number }>();
  const stats: SignerStats = { signed: 0, reused: 0, entries: 0 };

  const windowAt = (t: number): SignatureWindow => {
    const inception = Math.floor((t - skew) / 3600) * 3600;
    return { inception, expiration: inception + validity };
  };

  /** What an RRSIG covers, as one key: type, owner, original TTL and the set of RDATA, whatever their order or case. */
  function keyOf(rrset: readonly Rr[], originalTtl: number): string {
    const h = createHash('sha256').update(`${rrset[0].type}/${originalTtl}/`).update(ownerWire(rrset[0]));
    if (rrset.length === 1) h.update(rrset[0].rdata);
    else for (const r of [...new Set(rrset.map((x) => x.rdata.toString('hex')))].sort()) h.update(r).update('/');
    return h.digest('base64');
  }

  return {
    key: opts.key,
    sign(rrset, originalTtl = rrset[0]?.ttl) {
      if (rrset.length === 0) throw new Error('an RRset to sign has at least one record');
      const key = keyOf(rrset, originalTtl);
      const t = now();
      const hit = kept.get(key);
      if (hit && hit.expiration - t > refresh) {
        kept.delete(key);
        kept.set(key, hit); // most recently used last
        stats.reused++;
        return { name: rrset[0].name, owner: rrset[0].owner, type: DNSSEC_TYPE.RRSIG, ttl: rrset[0].ttl, rdata: hit.rdata };
      }
      const w = windowAt(t);
      const sig = rrsigOf(rrset, opts.key, opts.zone, w, originalTtl);
      kept.delete(key);
      kept.set(key, { rdata: sig.rdata, expiration: w.expiration });
      if (kept.size > maxEntries) kept.delete(kept.keys().next().value!);
      stats.signed++;
      stats.entries = kept.size;
      return sig;
    },
    stats: () => ({ ...stats, entries: kept.size }),
  };
}
