// `arus resolve`: the decision DNS would give a client, and its trace, without the network.
import type { Command } from './command.js';
import { DEFAULTS, opt } from './options.js';
import { openStores } from './stores.js';
import { UsageError } from './usage-error.js';

export const resolveCommand: Command = {
  usage: `arus resolve <name> --client IP [--ecs SUBNET] [--type A|AAAA] [--db FILE | --config DIR] [--json]

  --client IP     the address the query comes from (a resolver, or the client)
  --ecs SUBNET    an EDNS Client Subnet such as 36.66.0.0/24
  --type TYPE     A (default) or AAAA
  --config DIR    read YAML documents instead of the database (no live health)`,
  options: {
    ...opt.db,
    client: { type: 'string', default: '127.0.0.1' },
    ecs: { type: 'string' },
    type: { type: 'string', default: 'A' },
    config: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
  async run({ values, positionals }) {
    const [name] = positionals;
    if (!name) throw new UsageError('resolve needs a name, e.g. api.gslb.example.com');
    const type = String(values.type).toUpperCase();
    if (type !== 'A' && type !== 'AAAA') throw new UsageError('--type must be A or AAAA');
    const [{ loadDocuments }, { seedIfEmpty }, { explainQuery, formatExplanation, loadState }] = await Promise.all([
      import('../config/load.js'),
      import('../config/seed.js'),
      import('../explain.js'),
    ]);
    const stores = values.config ? undefined : await openStores(String(values.db));
    if (stores) seedIfEmpty(stores.store, DEFAULTS.regions);
    const state = loadState({ ...stores, docs: values.config ? loadDocuments([String(values.config)]) : undefined });
    const result = explainQuery(state, { name, type, client: String(values.client), ecs: values.ecs as string | undefined });
    console.log(values.json ? JSON.stringify(result, null, 2) : formatExplanation(result));
  },
};
