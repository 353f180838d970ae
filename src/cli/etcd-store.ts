// What a one-shot command (apply, drain, undrain, token, tsig, dnssec) writes to when it is
// given --etcd: the replicated store itself, with no read model; the replicas
// pick the change up from their watch.
import type { Logger } from '../log.js';
import type { Values } from './command.js';
import { etcdSettings } from './etcd-options.js';
import { insecurePlaintext } from './tls-options.js';

export async function openEtcdStore(values: Values, log: Logger) {
  const etcd = etcdSettings(values);
  if (!etcd) return undefined;
  const [{ createEtcdClient }, { createEtcdWrites }, { createEtcdTokens }, { createEtcdTsigKeys }, { createEtcdDnssecKeys }, { configRules }] = await Promise.all([
    import('../db/etcd/client.js'),
    import('../db/etcd/writes.js'),
    import('../db/etcd/tokens.js'),
    import('../db/etcd/tsig-keys.js'),
    import('../db/etcd/dnssec-keys.js'),
    import('../config/rules.js'),
  ]);
  const client = createEtcdClient({ ...etcd, insecurePlaintext: insecurePlaintext(values) }, log);
  const writes = createEtcdWrites({ client, rules: configRules });
  return { writes, tokens: createEtcdTokens({ client }), tsigKeys: createEtcdTsigKeys({ client }), dnssecKeys: createEtcdDnssecKeys({ client }), close: () => client.close() };
}
