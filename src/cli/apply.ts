// `arus apply`: validate YAML documents and upsert them into the database.
import type { Command } from './command.js';
import { opt } from './options.js';
import { openStores } from './stores.js';
import { etcdHelp, etcdOpt } from './etcd-options.js';
import { openEtcdStore } from './etcd-store.js';
import { tlsOpt } from './tls-options.js';
import { UsageError } from './usage-error.js';

export const applyCommand: Command = {
  usage: `arus apply <file or folder>... [--db FILE | --etcd URL,...] [--reason TEXT]

  Every document is validated first; if any is invalid nothing is written.
  Unchanged documents are skipped. A running server picks the change up.

${etcdHelp}`,
  options: { ...opt.db, reason: { type: 'string' }, ...etcdOpt, ...tlsOpt.insecure },
  async run({ values, positionals }, log) {
    if (positionals.length === 0) throw new UsageError('apply needs at least one file or folder');
    const { loadDocuments } = await import('../config/load.js');
    const docs = loadDocuments(positionals);
    const o = { actor: 'cli', reason: values.reason as string | undefined };
    const etcd = await openEtcdStore(values, log);
    const result = etcd ? await etcd.writes.apply(docs, o).finally(() => etcd.close()) : (await openStores(String(values.db))).store.apply(docs, o);
    console.log(result.changed.length ? `applied ${result.changed.join(', ')} (config version ${result.version})` : `nothing changed (config version ${result.version})`);
  },
};
