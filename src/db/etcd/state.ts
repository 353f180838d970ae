// The leader's published state: what every replica builds the same snapshot
// from, beside the configuration. Written by the leader alone, fenced by its
// term; read by every replica from its read model.

/** One endpoint's effective health as the leader published it (the tracker with overrides on top). */
export type PublishedHealth = { state: 'up' | 'down'; reason: string; transition: boolean; since: number };

export type PublishedState = {
  /** The leader's term (the create revision of its leader key) when it wrote this. */
  term: string;
  /** Wall time of the write (ms). */
  at: number;
  health: Record<string, PublishedHealth>;
  /** Probe region → endpoint region → RTT (ms). */
  latency: Record<string, Record<string, number>>;
  /** Region → the share of clients it sheds, and why. */
  capacity: Record<string, { shed: number; saturation?: number; reason: string }>;
  /** Hostname endpoints' names as the leader resolved them (absent when none). */
  resolved?: Record<string, { addresses: readonly string[]; ttl: number } | { error: string }>;
  /**
   * A signed zone's DNSKEY, CDS and CDNSKEY RRsets (base64 RDATA) with the
   * leader's KSK signatures over them, and the DNSKEY of the ZSK that signs
   * (absent when unsigned). Signed once, here, because ECDSA signatures are
   * randomized: a replica signing them itself would serve another sha256 at
   * the same version. Never a private key: each replica opens the ZSK from
   * its read model.
   */
  dnssec?: PublishedSigning;
};

export type PublishedSigning = {
  keyRrsets: { type: number; ttl: number; rdata: string[]; rrsigs: string[] }[];
  /** base64 of the active ZSK's DNSKEY RDATA. */
  zsk?: string;
};
