import { sql } from 'drizzle-orm';
import { check, index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/**
 * The control plane's SQLite tables. Configuration documents are stored as
 * JSON text in the same shape as their YAML files and REST bodies, and parsed
 * with the zod schemas again when read back.
 */

/** The zone's settings: a single row (id is always 1). */
export const zoneSettings = sqliteTable(
  'zone_settings',
  {
    id: integer('id').primaryKey(),
    doc: text('doc').notNull(),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [check('zone_settings_single_row', sql`${t.id} = 1`)],
);

export const regions = sqliteTable('regions', {
  id: text('id').primaryKey(),
  doc: text('doc').notNull(),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
});

/** History: every state change (health, failover, drain, config write) is one row. */
export const events = sqliteTable(
  'events',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    /** Unix time in milliseconds. */
    time: integer('time').notNull(),
    /** e.g. `config.applied`, `config.deleted`, `region.down`, `failover`. */
    kind: text('kind').notNull(),
    /** What changed, e.g. `region:sg` or `zone-settings`. */
    subject: text('subject').notNull(),
    oldState: text('old_state').notNull(),
    newState: text('new_state').notNull(),
    /** Human-readable. */
    reason: text('reason').notNull(),
    region: text('region'),
    /** JSON text with event-specific details. */
    data: text('data'),
  },
  (t) => [index('events_time_idx').on(t.time), index('events_kind_idx').on(t.kind), index('events_region_idx').on(t.region)],
);

/** Small key/value state, e.g. the configuration version counter. */
export const meta = sqliteTable('meta', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});

/** Admin overrides on top of probe health: drain (force down) or force up. */
export const overrides = sqliteTable('overrides', {
  /** `region:jkt`, `zone:jkt/jkt-a` or `endpoint:jkt/jkt-a/203.0.113.21`. */
  subject: text('subject').primaryKey(),
  mode: text('mode', { enum: ['drain', 'force-up'] }).notNull(),
  reason: text('reason').notNull(),
  actor: text('actor'),
  time: integer('time').notNull(),
});

/** Effective endpoint health as control last published it, for DNS nodes that read the database. */
export const healthState = sqliteTable('health_state', {
  /** `region/zone/address`. */
  endpoint: text('endpoint').primaryKey(),
  state: text('state', { enum: ['up', 'down'] }).notNull(),
  reason: text('reason').notNull(),
  transition: integer('transition', { mode: 'boolean' }).notNull().default(false),
  since: integer('since').notNull(),
});

/** Raw probe results, kept for a bounded window and pruned. */
export const probeResults = sqliteTable(
  'probe_results',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    time: integer('time').notNull(),
    agent: text('agent').notNull(),
    agentRegion: text('agent_region').notNull(),
    endpoint: text('endpoint').notNull(),
    ok: integer('ok', { mode: 'boolean' }).notNull(),
    /** Round-trip time in microseconds. */
    rttUs: integer('rtt_us'),
    error: text('error'),
  },
  (t) => [index('probe_results_time_idx').on(t.time), index('probe_results_endpoint_idx').on(t.endpoint)],
);

/** API tokens made with `arus token create`: only the SHA-256 of the token is kept. */
export const tokens = sqliteTable('tokens', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull(),
  role: text('role', { enum: ['admin', 'operator', 'viewer', 'probe', 'balancer', 'dns'] }).notNull(),
  /** The one identity a machine token speaks for (db/tokens.ts BINDINGS): probe agent and region, balancer region, DNS node. */
  agent: text('agent'),
  region: text('region'),
  node: text('node'),
  /** Lower-case hex SHA-256 of the token. */
  hash: text('hash').notNull().unique(),
  createdAt: integer('created_at').notNull(),
  lastUsedAt: integer('last_used_at'),
  revokedAt: integer('revoked_at'),
});

/** Every write through the API: who, when, what, and the subject before and after. */
export const audit = sqliteTable(
  'audit',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    /** Unix time in milliseconds. */
    time: integer('time').notNull(),
    /** The token's name. */
    actor: text('actor').notNull(),
    role: text('role').notNull(),
    /** e.g. `PUT /v1/regions/sg`. */
    action: text('action').notNull(),
    /** e.g. `region:sg`. */
    subject: text('subject').notNull(),
    /** JSON text; null when the subject did not exist. */
    before: text('before'),
    /** JSON text; null when the subject no longer exists. */
    after: text('after'),
    /** The HTTP status of the answer. */
    status: integer('status').notNull(),
  },
  (t) => [index('audit_time_idx').on(t.time), index('audit_actor_idx').on(t.actor), index('audit_subject_idx').on(t.subject)],
);

/**
 * TSIG keys for RFC 2136 dynamic updates (src/update/). TSIG needs the secret
 * itself to verify a MAC, so it cannot be hashed: it is stored encrypted
 * (AES-256-GCM, the key from ARUS_TSIG_KEY), bound to the key's name.
 */
export const tsigKeys = sqliteTable('tsig_keys', {
  /** The key's name as nsupdate sends it (lowercase, no final dot). */
  name: text('name').primaryKey(),
  algorithm: text('algorithm').notNull(),
  /** base64 of IV (12) | GCM tag (16) | ciphertext. */
  secret: text('secret').notNull(),
  /** JSON array of `TYPE:NAME` patterns the key may change. */
  allow: text('allow').notNull(),
  createdAt: integer('created_at').notNull(),
  lastUsedAt: integer('last_used_at'),
  revokedAt: integer('revoked_at'),
});

/**
 * DNSSEC keys (src/dnssec/): the zone's KSK and ZSKs, their DNSKEY RDATA and
 * their private keys (PKCS #8 PEM). Read by control alone; never in an API
 * read or a log line (db/dnssec-keys.ts lists them without the private key).
 */
export const dnssecKeys = sqliteTable('dnssec_keys', {
  /** `ksk-<tag>` or `zsk-<tag>`, and a suffix when a tag repeats. */
  id: text('id').primaryKey(),
  /** The zone's apex, lowercase, no final dot. */
  zone: text('zone').notNull(),
  role: text('role', { enum: ['ksk', 'zsk'] }).notNull(),
  algorithm: integer('algorithm').notNull(),
  tag: integer('tag').notNull(),
  /** base64 of the DNSKEY RDATA. */
  dnskey: text('dnskey').notNull(),
  privateKey: text('private_key').notNull(),
  /** published (in DNSKEY, signing nothing), active (signing), retired (still in DNSKEY, its work done), removed (gone from DNSKEY): db/dnssec-keys.ts. */
  state: text('state', { enum: ['published', 'active', 'retired', 'removed'] }).notNull(),
  createdAt: integer('created_at').notNull(),
  activatedAt: integer('activated_at'),
  retiredAt: integer('retired_at'),
});
