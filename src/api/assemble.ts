import type { Control } from '../control/control.js';
import { createAuditStore } from '../db/audit.js';
import type { ClusterView } from '../db/etcd/cluster.js';
import { createSqliteWrites } from '../db/sqlite-writes.js';
import type { Writes } from '../db/writes.js';
import type { HealthStore } from '../db/health-store.js';
import type { Store } from '../db/store.js';
import type { Db } from '../db/database.js';
import { createTokenStore } from '../db/tokens.js';
import type { Logger } from '../log.js';
import { statusOf, type RegionStatus } from '../control/status.js';
import { observeControl } from '../control/metrics.js';
import type { Metrics } from '../metrics/metrics.js';
import { metricsRoute } from '../metrics/routes.js';
import { createApp } from './app.js';
import type { Api } from './deps.js';
import { createAuth, type AuthOptions, type StaticToken } from './auth.js';
import { createRefusalLog } from './identity.js';
import { auditRoutes } from './routes/audit.js';
import { withStatusAccess } from '../status/access.js';
import { statusRoutes } from '../status/routes.js';

/** The control plane's API with its tokens, audit trail and metrics, over one database. */
export function assembleApi(deps: {
  db: Db;
  store: Store;
  healthStore: HealthStore;
  control: Control;
  staticTokens: StaticToken[];
  open?: AuthOptions['open'];
  failures?: AuthOptions['failures'];
  /** The verified client certificate's identity, under mutual TLS (src/tls/identity.ts). */
  peer?: AuthOptions['peer'];
  /** How writes are made: SQLite's transactions unless given (the replicated store's etcd transactions). */
  writes?: Writes;
  cluster?: ClusterView;
  metrics?: Metrics;
  /** The status page: open mode lets loopback clients read status without a token (off unless set; the composition root reads ARUS_STATUS_OPEN). */
  status?: { open?: boolean };
  log: Logger;
}) {
  const { metrics } = deps;
  metrics?.observeRegions(() => [...statusOf(deps.control.current().snapshot).regions].map(([id, r]) => [id, r.status] as [string, RegionStatus]));
  if (metrics) observeControl(metrics.registry, deps.control);
  const bearer = createAuth({ tokens: createTokenStore(deps.db), staticTokens: deps.staticTokens, open: deps.open, failures: deps.failures, peer: deps.peer });
  const auth = withStatusAccess(bearer, { open: deps.status?.open ?? false, failures: deps.failures });
  const audit = createAuditStore(deps.db);
  const writes = deps.writes ?? createSqliteWrites({ store: deps.store, healthStore: deps.healthStore, audit });
  const app = createApp({
    control: deps.control,
    store: deps.store,
    healthStore: deps.healthStore,
    writes,
    cluster: deps.cluster,
    auth,
    audit: (e) => audit.record(e),
    onProbeReport: metrics && ((results, region) => metrics.recordProbeResults(results, region)),
    onIdentityRefused: metrics && ((role, binding) => metrics.recordIdentityRefused(role, binding)),
    refusals: createRefusalLog(),
    middleware: metrics ? [metrics.apiMiddleware] : [],
    mount: [(a) => auditRoutes(a, { audit, requireRole: (...roles) => auth.requireRole(...roles) }), (a) => statusRoutes(a, { ...deps, access: auth }), ...(metrics ? [(a: Api) => metricsRoute(a, metrics)] : [])],
    log: deps.log,
  });
  return { app, audit, auth, writes };
}
