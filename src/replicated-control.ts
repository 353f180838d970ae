// Wiring of one replica of the replicated control plane (`arus control
// --etcd`): etcd holds the configuration, overrides, tokens, audit and
// history; this replica's SQLite file is its read model, fed by a watch; one
// replica, elected through an etcd lease, writes health and its history,
// fenced by its term; every replica serves the same snapshot for the same
// revision, takes probe reports (agents send them to all) and the API.
import { hostname } from 'node:os';
import type { ListenAddress } from './dns/server.js';
import type { ControlListener } from './roles.js';
import type { UpdateServer } from './update/server.js';
import { listenHttp } from './http-listener.js';
import { peerIdentity } from './tls/identity.js';

export type ReplicaOptions = ControlListener & {
  etcd: { endpoints: string[]; ca?: string; cert?: string; key?: string };
  /** This replica's name (default control-<host>-<port>). */
  id?: string;
  /** The URL other roles reach this replica at (default: its listen URL). */
  advertiseUrl?: string;
  /** The read model's SQLite file. */
  dbFile: string;
  /** YAML documents that seed an empty cluster. */
  seed?: string;
  /** The leader's lease (s). Default 2. */
  leaseTtlS?: number;
  /** RFC 2136 dynamic updates on this replica: the keys are the replicated ones (etcd, mirrored into the read model), the MACs taken shared by every replica. */
  update?: { listen: ListenAddress; kek: Buffer };
  /** The key DNSSEC private keys are sealed under in etcd (--tsig-key-file or ARUS_TSIG_KEY): without it a signed zone cannot be served. */
  kek?: Buffer;
};

export async function startReplicatedControl(o: ReplicaOptions) {
  const log = o.log.child({ component: 'replica' });
  const [{ createEtcdClient }, { openDatabase }, { createStore }, { createHealthStore }, { configRules }, etcd] = await Promise.all([
    import('./db/etcd/client.js'),
    import('./db/database.js'),
    import('./db/store.js'),
    import('./db/health-store.js'),
    import('./config/rules.js'),
    import('./control/replica.js'),
  ]);
  const client = createEtcdClient({ ...o.etcd, insecurePlaintext: o.insecurePlaintext }, log);
  const db = openDatabase(o.dbFile);
  etcd.refuseForeignDatabase(db, o.dbFile);
  const store = createStore(db, { rules: configRules, onEvent: (e) => o.metrics.recordEvent(e.kind) });
  const healthStore = createHealthStore(db);
  const readModel = await etcd.startReadModel({ client, db, log });
  const writes = etcd.writesFor({ client, readModel });
  await etcd.seedIfEmpty({ store, writes, seed: o.seed, log });

  const id = o.id ?? `control-${hostname()}-${o.listen.port}`;
  const host = o.listen.address.includes(':') ? `[${o.listen.address}]` : o.listen.address;
  const url = o.advertiseUrl ?? `${o.tls ? 'https' : 'http'}://${host}:${o.listen.port}`;
  const parts = etcd.assembleReplica({ client, id, url, readModel, store, healthStore, leaseTtlS: o.leaseTtlS ?? 2, metrics: o.metrics, log, etcd: o.etcd, resolvers: o.resolvers, kek: o.kek ?? o.update?.kek });
  await parts.election.start();

  const peer = o.tls?.mutual ? (c: { env: unknown }) => peerIdentity((c.env as { incoming?: { socket?: unknown } } | undefined)?.incoming?.socket, o.trustDomain) : undefined;
  const { assembleApi } = await import('./api/assemble.js');
  const { app } = assembleApi({ db, store, healthStore, control: parts.control, staticTokens: o.staticTokens, open: o.open, status: o.status, metrics: o.metrics, peer, writes, cluster: parts.cluster, log: o.log.child({ component: 'api' }) });
  const http = await listenHttp(app.fetch, o.listen, { what: 'control', tls: o.tls, insecurePlaintext: o.insecurePlaintext });
  let updates: UpdateServer | undefined;
  if (o.update) {
    const [{ startUpdates }, { createEtcdReplayGuard }, { FUDGE_S }] = await Promise.all([import('./update/start.js'), import('./db/etcd/replay-guard.js'), import('./update/tsig.js')]);
    const replay = createEtcdReplayGuard({ client, windowS: FUDGE_S, readModel });
    try {
      updates = await startUpdates({ db, store, writes, control: parts.control, metrics: o.metrics, ...o.update, replay, log: o.log });
    } catch (err) {
      parts.control.stop();
      await http.stop();
      await parts.stop();
      throw err;
    }
  }
  log.info({ id, url: http.url, update: updates?.udp ?? null, endpoints: o.etcd.endpoints, revision: readModel.applied() }, 'replica of the replicated control plane');
  return {
    id,
    control: parts.control,
    election: parts.election,
    readModel,
    url: http.url,
    update: updates && { port: updates.udp },
    async stop() {
      parts.control.stop();
      await updates?.stop();
      await http.stop();
      await parts.stop();
      await readModel.stop();
      client.close();
      db.$client.close();
    },
  };
}
