// Control's dynamic updates wired: the TSIG keys of its database (a replica's
// read model holds the replicated ones), its writes, the replay guard (this
// process's own, or the replicas' shared one in etcd), its metrics, and the
// listener on `--update-listen`.
import type { Control } from '../control/control.js';
import type { Db } from '../db/database.js';
import type { Store } from '../db/store.js';
import { createTsigKeyStore } from '../db/tsig-keys.js';
import type { Writes } from '../db/writes.js';
import type { ListenAddress } from '../dns/server.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { createUpdateHandler, type ReplayGuard } from './handler.js';
import { startUpdateServer, updateCounter, type UpdateServer } from './server.js';

export async function startUpdates(deps: {
  db: Db;
  store: Store;
  writes: Writes;
  control: Pick<Control, 'tick' | 'current'>;
  metrics?: Metrics;
  listen: ListenAddress;
  kek: Buffer;
  replay?: ReplayGuard;
  log: Logger;
}): Promise<UpdateServer> {
  const log = deps.log.child({ component: 'update' });
  const count = deps.metrics ? updateCounter(deps.metrics.registry) : () => undefined;
  const handle = createUpdateHandler({
    store: deps.store,
    writes: deps.writes,
    keys: createTsigKeyStore(deps.db, deps.kek),
    tick: () => deps.control.tick(),
    count,
    log,
    snapshot: () => deps.control.current().snapshot,
    replay: deps.replay,
  });
  const server = await startUpdateServer(deps.listen, handle, log);
  log.info({ address: deps.listen.address, port: server.udp }, 'RFC 2136 updates: listening on UDP and TCP');
  return server;
}
