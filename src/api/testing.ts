// Test fixture: the whole API over a real in-memory SQLite database, for app.request().
import { fileURLToPath } from 'node:url';
import { loadDocuments } from '../config/load.js';
import { createControl } from '../control/control.js';
import { createHealthStore } from '../db/health-store.js';
import { createStore } from '../db/store.js';
import { openDatabase } from '../db/database.js';
import { silentLogger } from '../log.js';
import { assembleApi } from './assemble.js';
import { configRules } from '../config/rules.js';

export const TOKENS = { admin: 'admin-token', viewer: 'viewer-token', probe: 'probe-token' } as const;
const REGIONS = fileURLToPath(new URL('../../regions', import.meta.url));

export function testApi() {
  const db = openDatabase(':memory:');
  const store = createStore(db, { rules: configRules });
  store.apply(loadDocuments([REGIONS]));
  const healthStore = createHealthStore(db);
  const control = createControl({ store, healthStore, log: silentLogger() });
  const { app, audit } = assembleApi({
    db,
    store,
    healthStore,
    control,
    staticTokens: [
      { token: TOKENS.admin, role: 'admin', name: 'test-admin' },
      { token: TOKENS.viewer, role: 'viewer', name: 'test-viewer' },
      { token: TOKENS.probe, role: 'probe', name: 'test-probe' },
    ],
    failures: { max: 1_000_000, delayMs: 0, maxDelayMs: 0 },
    log: silentLogger(),
  });
  const call = (method: string, path: string, opts: { token?: keyof typeof TOKENS | null; body?: unknown; raw?: string; headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    const token = opts.token === undefined ? 'admin' : opts.token;
    if (token) headers.authorization = `Bearer ${TOKENS[token]}`;
    let body: string | undefined = opts.raw;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    return app.request(path, { method, headers, body });
  };
  /** Everything a rejected write must leave unchanged. */
  const state = () => JSON.stringify([store.getConfig(), store.version(), healthStore.listOverrides(), store.listEvents({ limit: 1000 }).length]);
  return { db, store, healthStore, control, app, call, state, audit };
}
