import type { OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import type { Control } from '../control/control.js';
import type { HealthStore } from '../db/health-store.js';
import type { ClusterView } from '../db/etcd/cluster.js';
import type { Store } from '../db/store.js';
import type { Writes } from '../db/writes.js';
import type { Logger } from '../log.js';
import type { Env, Role } from './env.js';

/** The app every route module registers on. */
export type Api = OpenAPIHono<Env>;

/** How many refusals of one credential are written to the audit log: a burst, then a steady rate (api/identity.ts). */
export interface RefusalLog {
  /** True when this refusal of `actor` gets its audit row and log line; false past the credential's rate (it is still counted). */
  admit(actor: string): boolean;
}

/** What every route module receives. */
export type ApiDeps = {
  control: Control;
  /** Reads: the configuration and the history (the SQLite file, or a replica's read model of etcd). */
  store: Store;
  healthStore: HealthStore;
  /** Writes of the configuration, overrides and audit (db/writes.ts: SQLite, or etcd). */
  writes: Writes;
  /** The replicated control plane's replicas and etcd members, for GET /v1/cluster; none in the embedded mode. */
  cluster?: ClusterView;
  auth: { middleware: MiddlewareHandler<Env>; requireRole(...roles: Role[]): MiddlewareHandler<Env> };
  /** Records a write: who, what, before and after. */
  audit?: (entry: { actor: string; role: Role; action: string; subject: string; before: unknown; after: unknown; status: number }) => void;
  /** Counts a request refused for speaking for another identity than its credential's (metrics): the role, and which binding it broke. */
  onIdentityRefused?: (role: Role, binding: 'agent' | 'region' | 'node') => void;
  /** Which identity refusals get an audit row (all unless set): a credential's burst, then a steady rate. */
  refusals?: RefusalLog;
  /** Counts probe results as they are reported (metrics). */
  onProbeReport?: (results: readonly { ok: boolean; endpoint: string }[], agentRegion: string) => void;
  /** Extra middleware run on every request (metrics). */
  middleware?: MiddlewareHandler[];
  /** Extra routes (e.g. /metrics, /v1/audit) mounted by their own modules. */
  mount?: ((app: OpenAPIHono<Env>) => void)[];
  log: Logger;
  version?: string;
};

