// `arus apply`: validate YAML documents and upsert them into the database.
import type { Command } from './command.js';
import { opt } from './options.js';
import { openStores } from './stores.js';
import { UsageError } from './usage-error.js';

export const applyCommand: Command = {
  usage: `arus apply <file or folder>... [--db FILE] [--reason TEXT]

  Every document is validated first; if any is invalid nothing is written.
  Unchanged documents are skipped. A running server picks the change up.`,
  options: { ...opt.db, reason: { type: 'string' } },
  async run({ values, positionals }) {
    if (positionals.length === 0) throw new UsageError('apply needs at least one file or folder');
    const { loadDocuments } = await import('../config/load.js');
    const { store } = await openStores(String(values.db));
    const result = store.apply(loadDocuments(positionals), { actor: 'cli', reason: values.reason as string | undefined });
    console.log(result.changed.length ? `applied ${result.changed.join(', ')} (config version ${result.version})` : `nothing changed (config version ${result.version})`);
  },
};
