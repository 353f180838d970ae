// `arus dnssec`: the zone's DNSSEC keys. `init` makes a KSK and a ZSK
// (ECDSA P-256 by default, Ed25519 with --algorithm ed25519) and stores them
// in control's database; `status` lists them (never a private key); `ds`
// prints the DS record to give the parent, and the DNSKEY it is made from.
import type { DnssecKeyInfo } from '../db/dnssec-keys.js';
import type { Command, Values } from './command.js';
import { opt } from './options.js';
import { openStores } from './stores.js';
import { UsageError } from './usage-error.js';

const ALGORITHMS: Record<string, 13 | 15> = { ecdsap256sha256: 13, '13': 13, ed25519: 15, '15': 15 };

export const dnssecCommand: Command = {
  usage: `arus dnssec init [--algorithm ecdsap256sha256|ed25519] [--zone NAME] [--db FILE]
       arus dnssec status [--zone NAME] [--db FILE]
       arus dnssec ds [--zone NAME] [--db FILE]
       arus dnssec roll --zsk|--ksk [--ds-published] [--zone NAME] [--db FILE]

  The zone's signing keys, kept in control's database: a key-signing key (KSK,
  flags 257, it signs the DNSKEY set; its DS goes to the parent) and a
  zone-signing key (ZSK, flags 256, it signs the answers). ECDSA P-256 with
  SHA-256 (algorithm 13) unless --algorithm ed25519 (15). The zone is the
  configuration's apex unless --zone names it. status and ds never print a
  private key.

  roll --zsk starts a ZSK rollover now (control also starts one when
  zone.dnssec.zskLifetime has passed): the new key is published, signs once
  every cache holds it, and the old one is removed once what it signed has
  expired (RFC 7583 pre-publication). roll --ksk publishes a new KSK (in
  DNSKEY, CDS and CDNSKEY; both KSKs sign DNSKEY) and prints its DS; run
  again, it shows where the rollover stands. Once the parent serves the new
  DS, roll --ksk --ds-published makes the new KSK the active one; the old one
  keeps signing DNSKEY until the old DS has left the caches, then goes.
  Control (which must be running on this database) takes each step and
  records it in the history.

  --algorithm NAME    ecdsap256sha256 (13, default) or ed25519 (15)
  --zone NAME         the zone (default: the apex of the configuration in --db)
  --db FILE           SQLite database`,
  options: { ...opt.db, algorithm: { type: 'string' }, zone: { type: 'string' }, zsk: { type: 'boolean' }, ksk: { type: 'boolean' }, 'ds-published': { type: 'boolean' } },
  async run({ values, positionals }) {
    const [verb] = positionals;
    if (!['init', 'status', 'ds', 'roll'].includes(verb)) throw new UsageError('dnssec needs init, status, ds or roll');
    const { db, store } = await openStores(String(values.db));
    const [{ createDnssecKeyStore }, keys] = await Promise.all([import('../db/dnssec-keys.js'), import('../dnssec/keys.js')]);
    const zone = zoneOf(values, store.getConfig()?.zone.apex, String(values.db));
    const stored = createDnssecKeyStore(db);
    if (verb === 'init') {
      const algorithm = ALGORITHMS[String(values.algorithm ?? 'ecdsap256sha256').toLowerCase()];
      if (!algorithm) throw new UsageError(`--algorithm must be ecdsap256sha256 or ed25519, not "${String(values.algorithm)}"`);
      const now = Date.now();
      const made = (['ksk', 'zsk'] as const).map((role) => {
        const { key, pem } = keys.generateSigningKey(algorithm, role === 'ksk' ? keys.FLAGS.KSK : keys.FLAGS.ZSK);
        return { zone, role, algorithm, tag: key.tag, dnskey: key.rdata.toString('base64'), privateKey: pem, state: 'active' as const, createdAt: now, activatedAt: now, retiredAt: null };
      });
      const infos = stored.init(made);
      console.log(`${zone}: DNSSEC keys made (algorithm ${algorithm})\n${table(infos)}\n\nGive the parent this DS record (arus dnssec ds prints it again):\n${dsLines(zone, infos, keys).join('\n')}`);
    } else if (verb === 'status') {
      const infos = stored.list(zone);
      console.log(infos.length ? `${zone}\n${table(infos)}` : `${zone}: no DNSSEC keys (arus dnssec init makes them)`);
    } else if (verb === 'roll') {
      const config = store.getConfig();
      if (!config) throw new UsageError(`${String(values.db)} holds no configuration: a rollover's timings come from the zone's TTLs`);
      const { rollKsk, rollZsk } = await import('./dnssec-roll.js');
      if (values.zsk === values.ksk) throw new UsageError('roll needs one of --zsk or --ksk');
      console.log(values.zsk ? rollZsk(stored, zone, config) : rollKsk(stored, zone, config, values['ds-published'] === true));
    } else {
      const ksks = stored.list(zone).filter((k) => k.role === 'ksk' && (k.state === 'active' || k.state === 'published'));
      if (ksks.length === 0) throw new Error(`${zone} has no key-signing key: arus dnssec init --db ${String(values.db)} makes one`);
      console.log(dsLines(zone, ksks, keys).join('\n'));
    }
  },
};

function zoneOf(values: Values, apex: string | undefined, db: string): string {
  const z = (values.zone as string | undefined) ?? apex;
  if (!z) throw new UsageError(`no zone: ${db} holds no configuration yet (arus apply, or arus up/control --regions DIR seeds one), or give --zone NAME`);
  return z.toLowerCase().replace(/\.$/, '');
}

const when = (t: number | null) => (t === null ? '-' : new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ''));

function table(infos: readonly DnssecKeyInfo[]): string {
  const rows = infos.map((k) => [k.id, k.role.toUpperCase(), String(k.tag), String(k.algorithm), k.state, when(k.createdAt)]);
  const head = ['ID', 'ROLE', 'TAG', 'ALG', 'STATE', 'CREATED'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

/** Each KSK's DS record, then its DNSKEY as a comment (what the DS is made from). */
function dsLines(zone: string, infos: readonly DnssecKeyInfo[], keys: typeof import('../dnssec/keys.js')): string[] {
  return infos
    .filter((k) => k.role === 'ksk')
    .flatMap((k) => {
      const key = { rdata: Buffer.from(k.dnskey, 'base64'), tag: k.tag, algorithm: k.algorithm as 13 | 15 };
      return [keys.dsText(zone, key), `; from ${keys.dnskeyText(zone, key)}`];
    });
}
