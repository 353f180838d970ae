// `arus dnssec`: the zone's DNSSEC keys. `init` makes a KSK and a ZSK
// (ECDSA P-256 by default, Ed25519 with --algorithm ed25519) and stores them
// in control's database, or with --etcd in the replicated store (each private
// key sealed under ARUS_TSIG_KEY); `status` lists them (never a private key);
// `ds` prints the DS record to give the parent, and the DNSKEY it is made from.
import { dnssecSchema, type Config } from '../config/schema.js';
import type { DnssecKeyInfo, DnssecKeyStore } from '../db/dnssec-keys.js';
import type { Command, Values } from './command.js';
import { etcdHelp, etcdOpt } from './etcd-options.js';
import { openEtcdStore } from './etcd-store.js';
import { opt } from './options.js';
import { openStores } from './stores.js';
import { tlsOpt } from './tls-options.js';
import { keyEncryptionKeyOf, updateOpt } from './tsig.js';
import { UsageError } from './usage-error.js';

const ALGORITHMS: Record<string, 13 | 15> = { ecdsap256sha256: 13, '13': 13, ed25519: 15, '15': 15 };

type KeysModule = typeof import('../dnssec/keys.js');
type RollModule = typeof import('./dnssec-roll.js');

export const dnssecCommand: Command = {
  usage: `arus dnssec init [--algorithm ecdsap256sha256|ed25519] [--zone NAME] [--db FILE | --etcd URL,…]
       arus dnssec status [--zone NAME] [--db FILE | --etcd URL,…]
       arus dnssec ds [--zone NAME] [--db FILE | --etcd URL,…]
       arus dnssec roll --zsk|--ksk [--ds-published] [--zone NAME] [--db FILE | --etcd URL,…]

  The zone's signing keys, kept in control's database: a key-signing key (KSK,
  flags 257, it signs the DNSKEY set; its DS goes to the parent) and a
  zone-signing key (ZSK, flags 256, it signs the answers). ECDSA P-256 with
  SHA-256 (algorithm 13) unless --algorithm ed25519 (15). The zone is the
  configuration's apex unless --zone names it. status and ds never print a
  private key.

  With --etcd the keys are the replicated control plane's: each private key is
  stored sealed under ARUS_TSIG_KEY (or --tsig-key-file FILE), the key the
  replicas open it with and the TSIG secrets are sealed under (init and roll
  need it; a key that does not open the keys already there is refused).

  roll --zsk starts a ZSK rollover now (control also starts one when
  zone.dnssec.zskLifetime has passed): the new key is published, signs once
  every cache holds it, and the old one is removed once what it signed has
  expired (RFC 7583 pre-publication). roll --ksk publishes a new KSK (in
  DNSKEY, CDS and CDNSKEY; both KSKs sign DNSKEY) and prints its DS; run
  again, it shows where the rollover stands. Once the parent serves the new
  DS, roll --ksk --ds-published makes the new KSK the active one; the old one
  keeps signing DNSKEY until the old DS has left the caches, then goes.
  Control (which must be running on this database, or its leading replica on
  this etcd) takes each step and records it in the history.

  --algorithm NAME    ecdsap256sha256 (13, default) or ed25519 (15)
  --zone NAME         the zone (default: the apex of the configuration in --db or etcd)
  --db FILE           SQLite database
  --tsig-key-file FILE the key-encryption key, with --etcd (else ARUS_TSIG_KEY)
${etcdHelp}`,
  options: {
    ...opt.db,
    algorithm: { type: 'string' },
    zone: { type: 'string' },
    zsk: { type: 'boolean' },
    ksk: { type: 'boolean' },
    'ds-published': { type: 'boolean' },
    'tsig-key-file': updateOpt['tsig-key-file'],
    ...etcdOpt,
    ...tlsOpt.insecure,
  },
  async run({ values, positionals }, log) {
    const [verb] = positionals;
    if (!['init', 'status', 'ds', 'roll'].includes(verb)) throw new UsageError('dnssec needs init, status, ds or roll');
    if (verb === 'roll' && values.zsk === values.ksk) throw new UsageError('roll needs one of --zsk or --ksk');
    const [keys, roll] = await Promise.all([import('../dnssec/keys.js'), import('./dnssec-roll.js')]);
    const etcd = await openEtcdStore(values, log);
    if (etcd) {
      try {
        const config = await etcd.writes.config();
        const zone = zoneOf(values, config?.zone.apex, 'etcd');
        // Only what makes keys needs the key they are sealed under; status and ds read what is public.
        const kek = verb === 'init' || verb === 'roll' ? await kekOf(values) : undefined;
        console.log(await etcd.dnssecKeys.change(kek, (stored) => act(verb, { stored, zone, config, values, where: '--etcd …' }, keys, roll)));
      } finally {
        etcd.close();
      }
      return;
    }
    const { db, store } = await openStores(String(values.db));
    const { createDnssecKeyStore } = await import('../db/dnssec-keys.js');
    const config = store.getConfig();
    const zone = zoneOf(values, config?.zone.apex, String(values.db));
    console.log(act(verb, { stored: createDnssecKeyStore(db), zone, config, values, where: `--db ${String(values.db)}` }, keys, roll));
  },
};

/** One verb on a key store (synchronous: on etcd, its writes are sent once it returns); what to print. */
function act(verb: string, c: { stored: DnssecKeyStore; zone: string; config: Config | undefined; values: Values; where: string }, keys: KeysModule, roll: RollModule): string {
  const { stored, zone, config, values } = c;
  if (verb === 'init') {
    const algorithm = ALGORITHMS[String(values.algorithm ?? 'ecdsap256sha256').toLowerCase()];
    if (!algorithm) throw new UsageError(`--algorithm must be ecdsap256sha256 or ed25519, not "${String(values.algorithm)}"`);
    const now = Date.now();
    const made = (['ksk', 'zsk'] as const).map((role) => {
      const { key, pem } = keys.generateSigningKey(algorithm, role === 'ksk' ? keys.FLAGS.KSK : keys.FLAGS.ZSK);
      return { zone, role, algorithm, tag: key.tag, dnskey: key.rdata.toString('base64'), privateKey: pem, state: 'active' as const, createdAt: now, activatedAt: now, retiredAt: null };
    });
    const infos = stored.init(made);
    return `${zone}: DNSSEC keys made (algorithm ${algorithm})\n${table(infos)}\n\nGive the parent this DS record (arus dnssec ds prints it again):\n${dsLines(zone, infos, keys, config).join('\n')}`;
  }
  if (verb === 'status') {
    const infos = stored.list(zone);
    return infos.length ? `${zone}\n${table(infos)}` : `${zone}: no DNSSEC keys (arus dnssec init makes them)`;
  }
  if (verb === 'roll') {
    if (!config) throw new UsageError(`${c.where} holds no configuration: a rollover's timings come from the zone's TTLs`);
    return values.zsk ? roll.rollZsk(stored, zone, config) : roll.rollKsk(stored, zone, config, values['ds-published'] === true);
  }
  const ksks = stored.list(zone).filter((k) => k.role === 'ksk' && (k.state === 'active' || k.state === 'published'));
  if (ksks.length === 0) throw new Error(`${zone} has no key-signing key: arus dnssec init ${c.where} makes one`);
  return dsLines(zone, ksks, keys, config).join('\n');
}

/** The key-encryption key (--tsig-key-file, else ARUS_TSIG_KEY), as `arus tsig` and the replicas read it; required. */
async function kekOf(values: Values): Promise<Buffer> {
  const kek = await keyEncryptionKeyOf(values);
  if (kek) return kek;
  const { TSIG_KEY_SOURCE } = await import('../db/tsig-keys.js');
  throw new UsageError(`with --etcd a DNSSEC private key is stored sealed: set ${TSIG_KEY_SOURCE}, the key the replicas have`);
}

function zoneOf(values: Values, apex: string | undefined, where: string): string {
  const z = (values.zone as string | undefined) ?? apex;
  if (!z) throw new UsageError(`no zone: ${where} holds no configuration yet (arus apply, or arus up/control --regions DIR seeds one), or give --zone NAME`);
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
function dsLines(zone: string, infos: readonly DnssecKeyInfo[], keys: KeysModule, config: Config | undefined): string[] {
  // The DS with the TTL a KSK rollover waits out (zone.dnssec.parentDsTtl): the parent should serve it with no longer a one.
  const settings = config?.zone.dnssec ?? dnssecSchema.parse({});
  return infos
    .filter((k) => k.role === 'ksk')
    .flatMap((k) => {
      const key = { rdata: Buffer.from(k.dnskey, 'base64'), tag: k.tag, algorithm: k.algorithm as 13 | 15 };
      return [keys.dsText(zone, key, settings.parentDsTtl), `; from ${keys.dnskeyText(zone, key, settings.dnskeyTtl)}`];
    });
}
