// A signed zone's keys, as control publishes them and moves them on.
//
// What the snapshot carries (`current`): the DNSKEY RRset (every key not
// removed), the CDS and CDNSKEY RRsets (RFC 7344, RFC 8078: the DS set the
// parent should hold, for parents that scan), each signed here by every KSK
// still in DNSKEY (double signatures while a KSK rolls: a resolver holding
// either DS validates), and the active ZSK, which DNS nodes sign with. KSK
// private keys never leave this process.
//
// Rollovers (`tick`), with RFC 7583's timings from the zone's TTLs:
// - ZSK, pre-publication (§3.3.1): `zskLifetime` after a ZSK became active a
//   successor is published; after Ipub = Dprp + TTL(DNSKEY) it signs and the
//   old one retires; after Iret = Dprp + the zone's largest TTL (every
//   answer the old key signed has left the caches) the old one is removed.
// - KSK, double-KSK (§3.3.2): `arus dnssec roll --ksk` publishes a
//   successor (in DNSKEY and CDS/CDNSKEY); once Ipub has passed the parent
//   may take its DS, and `arus dnssec roll --ksk --ds-published` makes it the
//   active one; the old one keeps signing DNSKEY until the old DS has left
//   the caches (Dprp + the parent's DS TTL), then it is removed.
// Every change of a key, made here or by the CLI, is an event in the history.
import { DEFAULT_RECORD_TTL } from '../config/record-values.js';
import { dnssecSchema, type Config, type DnssecDoc } from '../config/schema.js';
import type { DnssecKeyDoc, DnssecKeyInfo, DnssecKeyStore } from '../db/dnssec-keys.js';
import { dsRdata, FLAGS, generateSigningKey, signingKeyFromPem, type Algorithm, type SigningKey } from '../dnssec/keys.js';
import { DNSSEC_TYPE } from '../dnssec/rdata.js';
import { createSigner, type Signer } from '../dnssec/signer.js';
import type { Logger } from '../log.js';
import type { KeyRrset, ZoneSigning } from '../snapshot/snapshot.js';
import type { EventLog } from './storage.js';

export interface ZoneKeys {
  /** What the next snapshot carries; undefined for an unsigned zone. */
  current(): ZoneSigning | undefined;
  /** Runs the rollover steps that are due and reads the keys again: true when the published keys changed (publish). */
  tick(): boolean;
}

export type ZoneKeysDeps = {
  keys: DnssecKeyStore;
  config: () => Config;
  events: EventLog;
  log: Logger;
  /** Wall clock, ms: key times are dates. */
  now: () => number;
  /**
   * Whether this process may take rollover steps (default: always). A
   * replica of the replicated control plane takes them only while it leads:
   * every replica reads the same keys, one writes them.
   */
  leading?: () => boolean;
};

/** A key's timings for the zone: RFC 7583's intervals in ms. */
export function rolloverTimings(config: Config): { settings: DnssecDoc; ipub: number; iretZsk: number; iretKsk: number } {
  const settings = config.zone.dnssec ?? dnssecSchema.parse({});
  const z = config.zone;
  const maxTtl = Math.max(z.soa.ttl, z.soa.minimum, z.nsTtl, settings.dnskeyTtl, ...z.services.map((s) => s.ttl), ...(z.records ?? []).map((r) => r.ttl ?? DEFAULT_RECORD_TTL));
  const dprp = settings.propagationDelay;
  return { settings, ipub: (dprp + settings.dnskeyTtl) * 1000, iretZsk: (dprp + maxTtl) * 1000, iretKsk: (dprp + settings.parentDsTtl) * 1000 };
}

export function createZoneKeys(deps: ZoneKeysDeps): ZoneKeys {
  const { keys, events, log, now } = deps;
  const kskSigners = new Map<string, Signer>();
  let published: ZoneSigning | undefined;
  let seen = new Map<string, string>();
  let fingerprint = '';
  let checkedAt = 0;

  const apex = () => deps.config().zone.apex;

  function build(docs: readonly DnssecKeyDoc[]): ZoneSigning | undefined {
    const zsk = docs.find((k) => k.role === 'zsk' && k.state === 'active');
    const ksks = docs.filter((k) => k.role === 'ksk');
    if (!zsk || ksks.length === 0) return undefined;
    const zone = apex();
    const { settings } = rolloverTimings(deps.config());
    const ttl = settings.dnskeyTtl;
    // A KSK removed from DNSKEY signs nothing again: its signer (and cache) goes.
    for (const id of kskSigners.keys()) if (!ksks.some((k) => k.id === id)) kskSigners.delete(id);
    const signers = ksks.map((k) => signerOf(zone, k));
    const rrset = (type: number, rdata: Buffer[]): KeyRrset => {
      const rrs = rdata.map((r) => ({ name: zone, type, ttl, rdata: r }));
      return { type, ttl, rdata, rrsigs: signers.map((s) => s.sign(rrs).rdata) };
    };
    // The parent's DS set to be: the active KSK, and a successor being rolled in.
    const toParent = ksks.filter((k) => k.state === 'active' || k.state === 'published').map((k) => Buffer.from(k.dnskey, 'base64'));
    const key = (k: DnssecKeyDoc) => ({ rdata: Buffer.from(k.dnskey, 'base64'), tag: k.tag, algorithm: k.algorithm as Algorithm });
    const cds = ksks.filter((k) => k.state === 'active' || k.state === 'published').map((k) => dsRdata(zone, key(k)));
    return {
      keyRrsets: [rrset(DNSSEC_TYPE.DNSKEY, docs.map((k) => Buffer.from(k.dnskey, 'base64'))), rrset(DNSSEC_TYPE.CDS, cds), rrset(DNSSEC_TYPE.CDNSKEY, toParent)],
      zsk: keyOf(zsk),
    };
  }

  function signerOf(zone: string, k: DnssecKeyDoc): Signer {
    let s = kskSigners.get(k.id);
    if (!s) kskSigners.set(k.id, (s = createSigner({ zone, key: keyOf(k), now })));
    return s;
  }

  /** One event per key whose state moved since the last look (or that is new); removed keys too. */
  function report(docs: readonly DnssecKeyInfo[]): void {
    const next = new Map(docs.map((k) => [k.id, k.state]));
    for (const k of docs) {
      const before = seen.get(k.id);
      if (before === k.state || (seen.size === 0 && fingerprint === '')) continue;
      events.deferEvent({
        kind: `dnssec.${k.role}.${k.state}`,
        subject: `dnssec:${apex()}/${k.id}`,
        oldState: before ?? 'none',
        newState: k.state,
        reason: reasonOf(k),
        data: { key: k.id, role: k.role, tag: k.tag, algorithm: k.algorithm, state: k.state },
      });
      log.info({ key: k.id, from: before ?? 'none', to: k.state }, 'dnssec key moved');
    }
    seen = next;
  }

  /** The rollover steps due now; true when one was taken. */
  function roll(docs: readonly DnssecKeyDoc[]): boolean {
    const t = now();
    const { settings, ipub, iretZsk, iretKsk } = rolloverTimings(deps.config());
    const zsks = docs.filter((k) => k.role === 'zsk');
    const active = zsks.find((k) => k.state === 'active');
    const successor = zsks.find((k) => k.state === 'published');
    let moved = false;
    if (active && !successor && settings.zskLifetime > 0 && t >= (active.activatedAt ?? active.createdAt) + settings.zskLifetime * 1000) {
      publishZsk(active);
      moved = true;
    }
    if (successor && active && t >= successor.createdAt + ipub) {
      keys.update(successor.id, { state: 'active', activatedAt: t });
      keys.update(active.id, { state: 'retired', retiredAt: t });
      moved = true;
    }
    for (const k of docs) {
      if (k.state !== 'retired') continue;
      const wait = k.role === 'zsk' ? iretZsk : iretKsk;
      if (t >= (k.retiredAt ?? t) + wait) {
        keys.update(k.id, { state: 'removed' });
        moved = true;
      }
    }
    return moved;
  }

  function publishZsk(like: DnssecKeyDoc): void {
    const { key, pem } = generateSigningKey(like.algorithm as Algorithm, FLAGS.ZSK);
    keys.add({ zone: like.zone, role: 'zsk', algorithm: like.algorithm, tag: key.tag, dnskey: key.rdata.toString('base64'), privateKey: pem, state: 'published', createdAt: now(), activatedAt: null, retiredAt: null });
  }

  return {
    current: () => published,
    tick() {
      const t = now();
      let docs = keys.live(apex());
      if ((deps.leading?.() ?? true) && roll(docs)) docs = keys.live(apex());
      report(keys.list(apex()));
      const fp = docs.map((k) => `${k.id}:${k.state}`).join(',') + `|${apex()}|${rolloverTimings(deps.config()).settings.dnskeyTtl}`;
      // Hourly, the KSK signatures are looked at again: a signer makes one anew once it nears expiry.
      if (fp === fingerprint && t - checkedAt < 3_600_000) return false;
      checkedAt = t;
      const next = build(docs);
      const changed = fp !== fingerprint || !sameSigs(published, next);
      fingerprint = fp;
      if (changed) published = next;
      return changed;
    },
  };
}

function keyOf(k: DnssecKeyDoc): SigningKey {
  return signingKeyFromPem(k.privateKey, k.algorithm as Algorithm, k.role === 'ksk' ? FLAGS.KSK : FLAGS.ZSK);
}

function sameSigs(a: ZoneSigning | undefined, b: ZoneSigning | undefined): boolean {
  const sigs = (z: ZoneSigning | undefined) => z?.keyRrsets.flatMap((r) => r.rrsigs.map((s) => s.toString('base64'))).join(',');
  return sigs(a) === sigs(b);
}

function reasonOf(k: DnssecKeyInfo): string {
  const what = `${k.role.toUpperCase()} ${k.tag} (algorithm ${k.algorithm})`;
  switch (k.state) {
    case 'published':
      return k.role === 'zsk' ? `${what} published in DNSKEY ahead of its rollover; it signs once every cache holds it` : `${what} published in DNSKEY, CDS and CDNSKEY: give the parent its DS (arus dnssec ds), then arus dnssec roll --ksk --ds-published`;
    case 'active':
      return k.role === 'zsk' ? `${what} signs the zone` : `${what} is the key the parent's DS points at`;
    case 'retired':
      return k.role === 'zsk' ? `${what} signs no more; it stays in DNSKEY until what it signed has left the caches` : `${what} left the parent's DS; it keeps signing DNSKEY until the old DS has left the caches`;
    default:
      return `${what} removed from DNSKEY`;
  }
}
