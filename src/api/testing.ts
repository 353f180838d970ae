// Test fixture: the whole API over a real in-memory SQLite database, for app.request().
import { fileURLToPath } from 'node:url';
import { loadDocuments } from '../config/load.js';
import { createControl, type ControlOptions } from '../control/control.js';
import { createHealthStore } from '../db/health-store.js';
import { createStore } from '../db/store.js';
import { openDatabase } from '../db/database.js';
import { silentLogger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { assembleApi } from './assemble.js';
import type { AuthOptions } from './auth.js';
import { configRules } from '../config/rules.js';

/** One static token per role; the machine ones bound to the identity in IDENTITIES. */
export const TOKENS = {
  admin: 'admin-token',
  operator: 'operator-token',
  viewer: 'viewer-token',
  probe: 'probe-token',
  balancer: 'balancer-token',
  dns: 'dns-token',
} as const;

/** Whom the machine tokens speak for: probe agent jkt-1 in jkt, jkt's balancer, DNS node dns-1. */
export const IDENTITIES = {
  probe: { agent: 'jkt-1', region: 'jkt' },
  balancer: { region: 'jkt' },
  dns: { node: 'dns-1' },
} as const;

/** The probe token's own agent, as a report body names it. */
export const PROBE_AGENT = { id: IDENTITIES.probe.agent, region: IDENTITIES.probe.region } as const;

const REGIONS = fileURLToPath(new URL('../../regions', import.meta.url));

/**
 * `metrics` adds /metrics, `peer` a client certificate's identity per request
 * (mutual TLS), `control` control's options (its tracker's settle time, say).
 */
export function testApi(opts: { metrics?: Metrics; peer?: AuthOptions['peer']; control?: Omit<ControlOptions, 'store' | 'healthStore' | 'log'> } = {}) {
  const db = openDatabase(':memory:');
  const store = createStore(db, { rules: configRules });
  store.apply(loadDocuments([REGIONS]));
  const healthStore = createHealthStore(db);
  const control = createControl({ ...opts.control, store, healthStore, log: silentLogger() });
  const { app, audit } = assembleApi({
    db,
    store,
    healthStore,
    control,
    staticTokens: [
      { token: TOKENS.admin, role: 'admin', name: 'test-admin' },
      { token: TOKENS.operator, role: 'operator', name: 'test-operator' },
      { token: TOKENS.viewer, role: 'viewer', name: 'test-viewer' },
      { token: TOKENS.probe, role: 'probe', name: 'test-probe', ...IDENTITIES.probe },
      { token: TOKENS.balancer, role: 'balancer', name: 'test-balancer', ...IDENTITIES.balancer },
      { token: TOKENS.dns, role: 'dns', name: 'test-dns', ...IDENTITIES.dns },
    ],
    failures: { max: 1_000_000, delayMs: 0, maxDelayMs: 0 },
    metrics: opts.metrics,
    peer: opts.peer,
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
