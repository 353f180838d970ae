// The SQLite file a command works on, opened with the stores over it. Every
// command that touches the database opens it here, when it runs.
import type { Metrics } from '../metrics/metrics.js';

/** The database in `file` with its configuration/event store and health store; events count in `metrics` when given. */
export async function openStores(file: string, metrics?: Metrics) {
  const [{ openDatabase }, { createStore }, { createHealthStore }, { configRules }, { createSqliteWrites }, { createAuditStore }] = await Promise.all([
    import('../db/database.js'),
    import('../db/store.js'),
    import('../db/health-store.js'),
    import('../config/rules.js'),
    import('../db/sqlite-writes.js'),
    import('../db/audit.js'),
  ]);
  const db = openDatabase(file);
  const store = createStore(db, { rules: configRules, onEvent: metrics && ((e) => metrics.recordEvent(e.kind)) });
  const healthStore = createHealthStore(db);
  return { db, store, healthStore, writes: createSqliteWrites({ store, healthStore, audit: createAuditStore(db) }) };
}
