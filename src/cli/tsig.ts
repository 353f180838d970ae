// `arus tsig`: create, list and revoke TSIG keys for RFC 2136 dynamic updates
// (stored encrypted under ARUS_TSIG_KEY), and the `--update-listen` and
// `--tsig-key-file` options control and `arus up` take.
import { readFileSync } from 'node:fs';
import type { ListenAddress } from '../dns/server.js';
import type { AllowPattern, TsigKey, TsigKeyInfo } from '../db/tsig-keys.js';
import type { Command, Values } from './command.js';
import { etcdHelp, etcdOpt } from './etcd-options.js';
import { openEtcdStore } from './etcd-store.js';
import { opt, parseListen } from './options.js';
import { tlsOpt } from './tls-options.js';
import { UsageError } from './usage-error.js';

const env = process.env;

export const updateOpt = {
  'update-listen': { type: 'string', default: env.ARUS_UPDATE_LISTEN },
  'tsig-key-file': { type: 'string', default: env.ARUS_TSIG_KEY_FILE },
} as const;

export const updateHelp = `  --update-listen ADDR take RFC 2136 dynamic updates (TSIG hmac-sha256) on UDP and TCP at ADDR,
                      e.g. 127.0.0.1:5301 (default off; ARUS_UPDATE_LISTEN); keys: arus tsig create
  --tsig-key-file FILE the key TSIG secrets are encrypted with (else ARUS_TSIG_KEY; ARUS_TSIG_KEY_FILE)`;

/** The key-encryption key's text: the file's content, else ARUS_TSIG_KEY. */
function kekText(values: Values): string | undefined {
  const file = values['tsig-key-file'] as string | undefined;
  if (file) {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`--tsig-key-file ${file}: ${(err as Error).message}`);
    }
  }
  return env.ARUS_TSIG_KEY;
}

/**
 * The key-encryption key (--tsig-key-file, else ARUS_TSIG_KEY) that TSIG
 * secrets and, with --etcd, DNSSEC private keys are sealed under; undefined
 * when neither is set. A key that is not one is a usage error naming its source.
 */
export async function keyEncryptionKeyOf(values: Values): Promise<Buffer | undefined> {
  const text = kekText(values);
  if (!text?.trim()) return undefined;
  const { keyEncryptionKey, TsigKeyError } = await import('../db/tsig-keys.js');
  try {
    return keyEncryptionKey(text);
  } catch (err) {
    if (err instanceof TsigKeyError) throw new UsageError(err.message);
    throw err;
  }
}

/** `--update-listen` and the key-encryption key, or undefined when updates are off. */
export async function updateSettings(values: Values): Promise<{ listen: ListenAddress; kek: Buffer } | undefined> {
  const at = values['update-listen'] as string | undefined;
  if (!at) return undefined;
  const listen = parseListen(at);
  if (listen.length !== 1) throw new UsageError('--update-listen takes one HOST:PORT');
  const { keyEncryptionKey, TsigKeyError } = await import('../db/tsig-keys.js');
  try {
    return { listen: listen[0], kek: keyEncryptionKey(kekText(values)) };
  } catch (err) {
    if (err instanceof TsigKeyError) throw new UsageError(`--update-listen: ${err.message}`);
    throw err;
  }
}

/** The key store a `tsig` command works on: control's SQLite file, or with --etcd the replicated store. */
type Keys = {
  create(input: { name: string; allow: AllowPattern[] }): TsigKey | Promise<TsigKey>;
  list(): TsigKeyInfo[] | Promise<TsigKeyInfo[]>;
  revoke(name: string): boolean | Promise<boolean>;
  close(): void;
};

export const tsigCommand: Command = {
  usage: `arus tsig create --name NAME --allow TYPE:NAME [--allow TYPE:NAME …] [--db FILE | --etcd URL,…]
       arus tsig list [--db FILE | --etcd URL,…]
       arus tsig revoke NAME [--db FILE | --etcd URL,…]

  Keys for RFC 2136 dynamic updates (certbot, cert-manager, external-dns),
  HMAC-SHA256. Each may change only the RRsets its --allow patterns name:
  TYPE is a static record type (TXT, A, …) or *; NAME is relative to the apex
  (www), @, or absolute with a final dot; * matches any characters
  (TXT:_acme-challenge.* covers _acme-challenge.gslb.example.com and below).
  The secret is printed once; it is stored encrypted with ARUS_TSIG_KEY (or
  --tsig-key-file FILE), which control needs too. With --etcd the keys are the
  replicated store's: every replica takes updates signed with them.

  --db FILE           SQLite database
  --tsig-key-file FILE the key-encryption key (else ARUS_TSIG_KEY)
${etcdHelp}`,
  options: { ...opt.db, name: { type: 'string' }, allow: { type: 'string', multiple: true }, 'tsig-key-file': updateOpt['tsig-key-file'], ...etcdOpt, ...tlsOpt.insecure },
  async run({ values, positionals }, log) {
    const [verb, name] = positionals;
    if (verb !== 'create' && verb !== 'list' && !(verb === 'revoke' && name)) throw new UsageError('tsig needs create, list or revoke NAME');
    const [{ createTsigKeyStore, keyEncryptionKey, TsigKeyError }, { openDatabase }, { formatAllow, parseAllow }] = await Promise.all([import('../db/tsig-keys.js'), import('../db/database.js'), import('../update/allow.js')]);
    let kek: Buffer;
    try {
      kek = keyEncryptionKey(kekText(values));
    } catch (err) {
      if (err instanceof TsigKeyError) throw new UsageError(err.message);
      throw err;
    }
    const etcd = await openEtcdStore(values, log);
    let keys: Keys;
    if (etcd) keys = { create: (input) => etcd.tsigKeys.create(kek, input), list: () => etcd.tsigKeys.list(), revoke: (n) => etcd.tsigKeys.revoke(n), close: () => etcd.close() };
    else {
      const db = openDatabase(String(values.db));
      keys = { ...createTsigKeyStore(db, kek), close: () => db.$client.close() };
    }
    try {
      if (verb === 'list') {
        const all = await keys.list();
        if (!all.length) return void console.log('no TSIG keys (create one with: arus tsig create --name certbot --allow TXT:_acme-challenge.*)');
        const when = (t: number | null) => (t === null ? '-' : new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ''));
        for (const k of all) console.log(`${k.name}  ${k.algorithm}  allow ${k.allow.map(formatAllow).join(' ')}  created ${when(k.createdAt)}  last used ${when(k.lastUsedAt)}${k.revokedAt ? `  REVOKED ${when(k.revokedAt)}` : ''}`);
        return;
      }
      if (verb === 'revoke') return void console.log((await keys.revoke(name)) ? `revoked TSIG key ${name}: updates signed with it are refused from now on` : `no live TSIG key ${name} (see arus tsig list)`);
      let k;
      try {
        k = await keys.create({ name: String(values.name ?? ''), allow: ((values.allow as unknown as string[] | undefined) ?? []).map(parseAllow) });
      } catch (err) {
        if (err instanceof TsigKeyError) throw new UsageError(err.message);
        throw err;
      }
      const secret = k.secret.toString('base64');
      console.log(
        [
          `created TSIG key ${k.name} (hmac-sha256), allowed to change ${k.allow.map(formatAllow).join(' ')}:`,
          '',
          `  ${secret}`,
          '',
          'Copy it now: it will not be shown again. For nsupdate:',
          `  nsupdate -y hmac-sha256:${k.name}:${secret}`,
          'or a key file (nsupdate -k FILE):',
          `  key "${k.name}" {`,
          '    algorithm hmac-sha256;',
          `    secret "${secret}";`,
          '  };',
        ].join('\n'),
      );
    } finally {
      keys.close();
    }
  },
};
