// The options of the replicated control plane's store: etcd's client URLs and
// the certificates control presents to it (etcd's security guide: client TLS
// with client-certificate auth). Each reads its environment variable as its default.
import type { Values } from './command.js';

const env = process.env;

export const etcdOpt = {
  etcd: { type: 'string', default: env.ARUS_ETCD },
  'etcd-ca': { type: 'string', default: env.ARUS_ETCD_CA },
  'etcd-cert': { type: 'string', default: env.ARUS_ETCD_CERT },
  'etcd-key': { type: 'string', default: env.ARUS_ETCD_KEY },
} as const;

export const etcdHelp = `  --etcd URL,URL,...  the replicated store: etcd's client URLs (ARUS_ETCD); without it, SQLite alone
  --etcd-ca FILE      PEM CA etcd's certificates chain to (ARUS_ETCD_CA)
  --etcd-cert FILE    PEM client certificate control presents to etcd (ARUS_ETCD_CERT)
  --etcd-key FILE     its PEM private key (ARUS_ETCD_KEY)`;

const str = (v: Values[string]) => (typeof v === 'string' && v !== '' ? v : undefined);

/** The etcd settings, or undefined when --etcd is not given (the embedded mode). */
export function etcdSettings(values: Values): { endpoints: string[]; ca?: string; cert?: string; key?: string } | undefined {
  const list = str(values.etcd);
  if (!list) return undefined;
  return { endpoints: list.split(',').map((s) => s.trim()).filter(Boolean), ca: str(values['etcd-ca']), cert: str(values['etcd-cert']), key: str(values['etcd-key']) };
}
