// A replica's read model: everything under the prefix, copied from etcd into
// the replica's own SQLite file — once whole, then from a watch, change by
// change in revision order. Every reader on the replica (the API, `arus
// events`, the status page, control) reads SQLite as in the embedded mode; the
// copy is at most a watch event behind etcd, and each event row is written
// once, keyed by the etcd revision that created it.
import { asc } from 'drizzle-orm';
import type { Etcd3, IKeyValue } from 'etcd3';
import type { Logger } from '../../log.js';
import type { Db } from '../database.js';
import * as schema from '../schema.js';
import type { SealedDnssecKey } from './dnssec-keys.js';
import { kindOf, PREFIX } from './keys.js';
import { createApplier } from './read-model-apply.js';
import { createWatchFollower } from './read-model-watch.js';
import type { PublishedState } from './state.js';

const APPLIED = 'etcd_revision';

export interface ReadModel {
  /** Copies everything under the prefix, then follows the watch. Resolves once the copy is whole. */
  start(): Promise<void>;
  /** The etcd revision the SQLite copy holds everything up to. */
  applied(): number;
  /** Resolves true once the copy holds `revision` (a write's), false after `timeoutMs`. */
  waitFor(revision: number, timeoutMs: number): Promise<boolean>;
  /** The leader's published health, latency and capacity, and the revision it was written at. */
  state(): { doc: PublishedState; revision: number } | undefined;
  /** Every zone's DNSSEC keys, oldest first, their private keys sealed as etcd holds them. */
  dnssecKeys(): SealedDnssecKey[];
  /** The revision of each configuration document, for ETags and conditional writes. */
  revisionOf(key: string): number | undefined;
  /** Called after each applied batch, with the new revision. */
  subscribe(fn: (revision: number) => void): () => void;
  /** Whether the watch is connected now, and when it last was not. */
  connected(): boolean;
  stop(): Promise<void>;
}

export function createReadModel(deps: { client: Etcd3; db: Db; log: Logger }): ReadModel {
  const { client, db, log } = deps;
  const { zoneSettings, regions, overrides, tokens, tsigKeys, dnssecKeys } = schema;
  const listeners = new Set<(r: number) => void>();
  const revisions = new Map<string, number>();
  let applied = 0;
  let published: { doc: PublishedState; revision: number } | undefined;

  const applier = createApplier(db);
  const { setMeta } = applier;

  /** One key's put or delete, applied inside the caller's transaction; the published state kept in memory too. */
  function apply(kv: IKeyValue, deleted: boolean, rowId: number): void {
    const key = kv.key.toString();
    if (deleted) revisions.delete(key);
    else revisions.set(key, Number(kv.mod_revision));
    const state = applier.apply(kv, deleted, rowId);
    if (state !== undefined) published = state === null ? undefined : state;
  }

  function commit(revision: number, batch: { kv: IKeyValue; deleted: boolean }[]): void {
    const ids = rowIds(batch.map((b) => b.kv));
    db.transaction(() => {
      for (const b of batch) apply(b.kv, b.deleted, ids.get(b.kv) ?? 0);
      if (revision > applied) setMeta(APPLIED, String(revision));
    });
    if (revision > applied) applied = revision;
    for (const fn of listeners) fn(applied);
  }

  /** The whole prefix at one revision, replacing the copy (first start, or after the watch fell behind a compaction). */
  async function resync(): Promise<void> {
    const res = await client.getAll().prefix(PREFIX).exec();
    const revision = Number(res.header.revision);
    db.transaction(() => {
      db.delete(zoneSettings).run();
      db.delete(regions).run();
      db.delete(overrides).run();
      db.delete(tokens).run();
      db.delete(tsigKeys).run();
      db.delete(dnssecKeys).run();
      revisions.clear();
      published = undefined;
    });
    commit(revision, res.kvs.map((kv) => ({ kv, deleted: false })));
    log.info({ revision, keys: res.kvs.length }, 'read model copied from etcd');
  }

  const follower = createWatchFollower({
    client,
    log,
    applied: () => applied,
    resync,
    onBatch: (revision, batch) => commit(revision, batch),
  });

  return {
    async start() {
      await resync();
      await follower.start();
    },
    applied: () => applied,
    waitFor(revision, timeoutMs) {
      if (applied >= revision) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          unsubscribe();
          resolve(false);
        }, timeoutMs);
        const unsubscribe = this.subscribe((r) => {
          if (r < revision) return;
          clearTimeout(timer);
          unsubscribe();
          resolve(true);
        });
      });
    },
    state: () => published,
    dnssecKeys: () =>
      db
        .select()
        .from(dnssecKeys)
        .orderBy(asc(dnssecKeys.createdAt), asc(dnssecKeys.id))
        .all()
        .map(({ privateKey, ...k }) => ({ ...k, sealed: privateKey })),
    revisionOf: (key) => revisions.get(key),
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    connected: () => follower.connected(),
    stop: () => follower.stop(),
  };
}


/** Row ids for the history and audit keys among `kvs`: create revision × 1000 + rank by key within it. */
function rowIds(kvs: readonly IKeyValue[]): Map<IKeyValue, number> {
  const groups = new Map<string, IKeyValue[]>();
  for (const kv of kvs) {
    const k = kindOf(kv.key.toString()).kind;
    if (k !== 'event' && k !== 'audit') continue;
    const g = `${k}:${kv.create_revision}`;
    groups.set(g, [...(groups.get(g) ?? []), kv]);
  }
  const ids = new Map<IKeyValue, number>();
  for (const g of groups.values()) {
    g.sort((a, b) => Buffer.compare(a.key, b.key));
    g.forEach((kv, i) => ids.set(kv, Number(kv.create_revision) * 1000 + i));
  }
  return ids;
}
