import type { Db } from './database.js';
import type { ConfigDocuments, DocumentRules } from './documents.js';
import { guardOf, type StorageGuard } from './faults.js';
import type { EventHistory, StoredEvent } from './history.js';
import { createSqliteDocuments } from './sqlite-documents.js';
import { createSqliteHistory } from './sqlite-history.js';

/** The control plane's configuration and history: documents and events over one connection. */
export interface Store extends ConfigDocuments, EventHistory {
  /** Runs `fn` in one transaction: everything it writes is there whole or not at all. */
  transaction<T>(fn: () => T): T;
  /** The connection's storage faults and back-off, shared with the other stores over it. */
  readonly guard: StorageGuard;
}

/** The store backed by SQLite. `onEvent` sees every events row as it is written (metrics count them). */
export function createStore(db: Db, opts: { rules: DocumentRules; now?: () => number; onEvent?: (e: StoredEvent) => void; maxPendingEvents?: number }): Store {
  const now = opts.now ?? Date.now;
  const guard = guardOf(db);
  const history = createSqliteHistory(db, { guard, now, onEvent: opts.onEvent, maxPendingEvents: opts.maxPendingEvents });
  const documents = createSqliteDocuments(db, { rules: opts.rules, guard, now, recordEvent: (e) => history.recordEvent(e) });
  return {
    ...documents,
    ...history,
    transaction: (fn) => guard.write(() => db.transaction(() => fn())),
    guard,
  };
}
