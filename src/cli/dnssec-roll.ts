// `arus dnssec roll`: starting a rollover, and the KSK rollover's one manual
// step (the parent has the new DS). Control takes the timed steps
// (control/zone-keys.ts); this prints where a rollover stands and what comes next.
import type { Config } from '../config/schema.js';
import { DnssecKeyError, type DnssecKeyInfo, type DnssecKeyStore } from '../db/dnssec-keys.js';
import { rolloverTimings } from '../control/zone-keys.js';
import { dsText, FLAGS, generateSigningKey, type Algorithm } from '../dnssec/keys.js';

const at = (t: number) => new Date(t).toISOString().replace(/\.\d+Z$/, 'Z');
const keyText = (k: DnssecKeyInfo) => `${k.role.toUpperCase()} ${k.tag} (${k.id})`;

function publish(keys: DnssecKeyStore, zone: string, like: DnssecKeyInfo, role: 'ksk' | 'zsk'): DnssecKeyInfo {
  const { key, pem } = generateSigningKey(like.algorithm as Algorithm, role === 'ksk' ? FLAGS.KSK : FLAGS.ZSK);
  return keys.add({ zone, role, algorithm: like.algorithm, tag: key.tag, dnskey: key.rdata.toString('base64'), privateKey: pem, state: 'published', createdAt: Date.now(), activatedAt: null, retiredAt: null });
}

function live(keys: DnssecKeyStore, zone: string, role: 'ksk' | 'zsk'): { active: DnssecKeyInfo; next?: DnssecKeyInfo; retired: DnssecKeyInfo[] } {
  const mine = keys.list(zone).filter((k) => k.role === role);
  const active = mine.find((k) => k.state === 'active');
  if (!active) throw new DnssecKeyError(`${zone} has no active ${role.toUpperCase()}: arus dnssec init makes the first keys`);
  return { active, next: mine.find((k) => k.state === 'published'), retired: mine.filter((k) => k.state === 'retired') };
}

export function rollZsk(keys: DnssecKeyStore, zone: string, config: Config): string {
  const { ipub, iretZsk } = rolloverTimings(config);
  const { active, next } = live(keys, zone, 'zsk');
  const successor = next ?? publish(keys, zone, active, 'zsk');
  const head = next ? `a ZSK rollover is under way: ${keyText(successor)} was published at ${at(successor.createdAt)}` : `ZSK rollover started: ${keyText(successor)} published`;
  return `${head}
  it signs from ${at(successor.createdAt + ipub)} (once every cache holds the new DNSKEY set), when ${keyText(active)} retires
  ${keyText(active)} leaves DNSKEY ${Math.round(iretZsk / 1000)} s after that (what it signed has expired by then)`;
}

export function rollKsk(keys: DnssecKeyStore, zone: string, config: Config, dsPublished: boolean): string {
  const { ipub, iretKsk, settings } = rolloverTimings(config);
  const { active, next, retired } = live(keys, zone, 'ksk');
  if (dsPublished) {
    if (!next) throw new DnssecKeyError(`${zone} has no KSK being rolled in: arus dnssec roll --ksk publishes one first`);
    const ready = next.createdAt + ipub;
    if (Date.now() < ready) throw new DnssecKeyError(`${keyText(next)} is not in every cache's DNSKEY set until ${at(ready)}: the parent must not serve its DS before then; run --ds-published after it`);
    const now = Date.now();
    keys.update(next.id, { state: 'active', activatedAt: now });
    keys.update(active.id, { state: 'retired', retiredAt: now });
    return `${keyText(next)} is the active KSK now; CDS and CDNSKEY name it alone
  ${keyText(active)} keeps signing DNSKEY until ${at(now + iretKsk)} (the old DS has left the caches), then leaves DNSKEY
  the parent may remove the old DS record now`;
  }
  if (!next) {
    const made = publish(keys, zone, active, 'ksk');
    return `KSK rollover started: ${keyText(made)} published in DNSKEY, CDS and CDNSKEY; both KSKs sign DNSKEY
  from ${at(made.createdAt + ipub)} give the parent this DS (beside the old one, or instead of it):
${dsText(zone, { rdata: Buffer.from(made.dnskey, 'base64'), tag: made.tag, algorithm: made.algorithm as Algorithm }, settings.parentDsTtl)}
  then run: arus dnssec roll --ksk --ds-published`;
  }
  const ready = next.createdAt + ipub;
  const state = Date.now() >= ready ? 'ready: the parent may serve its DS now' : `not ready until ${at(ready)}`;
  return `a KSK rollover is under way: ${keyText(next)} published at ${at(next.createdAt)}, ${state}
${dsText(zone, { rdata: Buffer.from(next.dnskey, 'base64'), tag: next.tag, algorithm: next.algorithm as Algorithm }, settings.parentDsTtl)}
  once the parent serves it: arus dnssec roll --ksk --ds-published${retired.length ? `\n  still leaving: ${retired.map(keyText).join(', ')}` : ''}`;
}
