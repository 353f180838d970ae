// The parts of one replica of the replicated control plane, assembled: the
// read model, the writes, the election, the fenced writer, the served
// snapshot, control on the replicated storage, the cluster view, and the
// history of stretches without quorum, and the zone's DNSSEC keys.
// src/replicated-control.ts wires them to the API.
import { eq } from 'drizzle-orm';
import type { Etcd3 } from 'etcd3';
import { Gauge } from 'prom-client';
import { loadDocuments } from '../config/load.js';
import { configRules } from '../config/rules.js';
import type { Db } from '../db/database.js';
import { createEtcdClient } from '../db/etcd/client.js';
import { createClusterView } from '../db/etcd/cluster.js';
import { createReplicaDnssecKeys } from '../db/etcd/dnssec-keys.js';
import { createElection } from '../db/etcd/election.js';
import { createFencedWriter, GAP_MERGE_MS } from '../db/etcd/fenced.js';
import { createQuorumMonitor } from '../db/etcd/quorum.js';
import { createReadModel, type ReadModel } from '../db/etcd/read-model.js';
import { createEtcdWrites } from '../db/etcd/writes.js';
import type { HealthStore } from '../db/health-store.js';
import * as schema from '../db/schema.js';
import type { Store } from '../db/store.js';
import type { Writes } from '../db/writes.js';
import { FLAGS, signingKeyFromPem, type Algorithm, type SigningKey } from '../dnssec/keys.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { createControl } from './control.js';
import { createReplicaServed } from './replica-served.js';
import { createReplicaStorage } from './replica-storage.js';

/** A read model must be a file of its own: an embedded control's database would mix two histories. */
export function refuseForeignDatabase(db: Db, file: string): void {
  const { meta, regions, events } = schema;
  const applied = db.select().from(meta).where(eq(meta.key, 'etcd_revision')).get();
  if (applied) return;
  if (db.select({ id: regions.id }).from(regions).get() || db.select({ id: events.id }).from(events).get())
    throw new Error(`--db ${file} holds the data of an embedded control (SQLite alone); a replica's read model needs a file of its own: give --db another path`);
}

/** The read model copied from etcd, retried with back-off while etcd cannot be reached. */
export async function startReadModel(deps: { client: Etcd3; db: Db; log: Logger }): Promise<ReadModel> {
  const readModel = createReadModel(deps);
  for (let attempt = 0; ; attempt++) {
    try {
      await readModel.start();
      return readModel;
    } catch (err) {
      if (attempt === 0 || attempt % 10 === 0) deps.log.warn({ err: (err as Error).message, attempt }, 'cannot copy the read model from etcd yet; retrying');
      await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** attempt)));
    }
  }
}

export const writesFor = (deps: { client: Etcd3; readModel: ReadModel }): Writes => createEtcdWrites({ client: deps.client, rules: configRules, readModel: deps.readModel });

/** An empty cluster gets the seed documents; a second replica seeding at the same moment finds them there (the write is conditional). */
export async function seedIfEmpty(deps: { store: Store; writes: Writes; seed?: string; log: Logger }): Promise<void> {
  if (!deps.store.isEmpty() || !deps.seed) return;
  const r = await deps.writes.apply(loadDocuments([deps.seed]), { actor: 'seed', reason: `seeded from ${deps.seed}` });
  if (r.changed.length) deps.log.info({ seed: deps.seed, changed: r.changed.length }, 'empty cluster seeded');
}

export function assembleReplica(deps: {
  client: Etcd3;
  id: string;
  url: string;
  readModel: ReadModel;
  store: Store;
  healthStore: HealthStore;
  leaseTtlS: number;
  metrics: Metrics;
  log: Logger;
  etcd: { endpoints: string[]; ca?: string; cert?: string; key?: string };
  /** Where hostname endpoints' names are resolved. */
  resolvers?: string[];
  /** The key DNSSEC private keys are sealed under (--tsig-key-file, ARUS_TSIG_KEY: cli/tsig.ts reads it). */
  kek?: Buffer;
}) {
  const { client, readModel, log } = deps;
  const election = createElection({ client, id: deps.id, url: deps.url, ttlS: deps.leaseTtlS, log });
  const fenced = createFencedWriter({ client, election, log });
  const dnssecKeys = createReplicaDnssecKeys({ client, election, readModel, kek: deps.kek, log: log.child({ component: 'dnssec' }) });
  const served = createReplicaServed({ config: deps.store, state: () => readModel.state(), zsk: zskOf(dnssecKeys), log });
  readModel.subscribe(() => served.refresh());
  const storage = createReplicaStorage({ store: deps.store, healthStore: deps.healthStore, fenced, isLeader: () => election.isLeader() });
  const control = createControl({
    store: storage.store,
    healthStore: storage.healthStore,
    log: log.child({ component: 'control' }),
    resolvers: deps.resolvers,
    replica: { served, leadership: election },
    dnssecKeys,
  });
  control.start();
  const memberClients = new Map<string, Etcd3>();
  const cluster = createClusterView({ client, id: deps.id, url: deps.url, election, readModel, log, memberClient: (url) => memberClientFor(url, deps, memberClients) });
  const quorum = createQuorumMonitor({ client, log });
  recordGaps(quorum, election, fenced, (gap) => recordedGap(deps.store, gap));
  observeReplica(deps.metrics, { election, readModel, quorum, fenced });
  return {
    election,
    control,
    cluster,
    async stop() {
      quorum.stop();
      cluster.stop();
      await election.stop();
      for (const c of memberClients.values()) c.close();
    },
  };
}

/** The ZSK a published state names, opened from the read model once per key. */
function zskOf(keys: ReturnType<typeof createReplicaDnssecKeys>): (dnskey: string) => SigningKey | undefined {
  const cache = new Map<string, SigningKey>();
  return (dnskey) => {
    let k = cache.get(dnskey);
    if (k) return k;
    const doc = keys.byDnskey(dnskey);
    if (doc) cache.set(dnskey, (k = signingKeyFromPem(doc.privateKey, doc.algorithm as Algorithm, FLAGS.ZSK)));
    return k;
  };
}

/** A client of one member alone, for its status (cached). */
function memberClientFor(url: string, deps: { etcd: { ca?: string; cert?: string; key?: string }; log: Logger }, cache: Map<string, Etcd3>): Etcd3 {
  let c = cache.get(url);
  if (!c) {
    c = createEtcdClient({ endpoints: [url], ca: deps.etcd.ca, cert: deps.etcd.cert, key: deps.etcd.key }, deps.log);
    cache.set(url, c);
  }
  return c;
}


/** The history already holds a no-quorum event for a stretch that overlaps `gap` (each replica times it a little differently). */
function recordedGap(store: Store, gap: { start: number; end: number }): boolean {
  return store.listEvents({ kind: 'control.no-quorum', limit: 10 }).some((e) => {
    const d = e.data as { start?: number; end?: number } | null;
    return typeof d?.start === 'number' && typeof d.end === 'number' && d.start <= gap.end && d.end + GAP_MERGE_MS >= gap.start;
  });
}

/**
 * A stretch without quorum goes into the history once: written by the
 * replica that leads after it (every replica saw it; a gap seen by one that
 * does not come to lead within 30 s is left to the one that does). A replica
 * that comes to lead later, within those 30 s, finds it written by the one
 * before and does not write it again.
 */
function recordGaps(
  quorum: ReturnType<typeof createQuorumMonitor>,
  election: ReturnType<typeof createElection>,
  fenced: ReturnType<typeof createFencedWriter>,
  recorded: (gap: { start: number; end: number }) => boolean,
): void {
  let pending: { start: number; end: number; seenAt: number } | undefined;
  let writing = false;
  const flush = () => {
    if (!pending || writing || !election.isLeader()) return;
    if (Date.now() - pending.seenAt > 30_000 || recorded(pending)) return void (pending = undefined);
    const gap = pending;
    const s = ((gap.end - gap.start) / 1000).toFixed(1);
    writing = true;
    // Once across replicas: etcd checks, in the same transaction, that no overlapping stretch was recorded.
    void fenced
      .gapOnce(
        { start: gap.start, end: gap.end },
        {
          kind: 'control.no-quorum',
          subject: 'etcd',
          oldState: 'no-quorum',
          newState: 'quorum',
          reason: `etcd had no quorum for ${s} s, from ${new Date(gap.start).toISOString()} to ${new Date(gap.end).toISOString()}: writes were refused, nobody led, nothing failed over; DNS answered from its last snapshot`,
          data: { start: gap.start, end: gap.end, seconds: Number(s) },
        },
      )
      .then((outcome) => {
        // Not leading any more, or etcd away: left for this replica's next term, or the next leader's.
        if ((outcome === 'written' || outcome === 'recorded') && pending === gap) pending = undefined;
      })
      .finally(() => (writing = false));
  };
  quorum.onGap((g) => {
    // A stretch right after one not yet written (etcd settling as its members come back) is the same outage: one event for both.
    const start = pending && g.start - pending.end <= GAP_MERGE_MS ? pending.start : g.start;
    pending = { start, end: g.end, seenAt: Date.now() };
    flush();
  });
  election.subscribe((l) => l.leader && flush());
}

function observeReplica(metrics: Metrics, p: { election: ReturnType<typeof createElection>; readModel: ReadModel; quorum: ReturnType<typeof createQuorumMonitor>; fenced: ReturnType<typeof createFencedWriter> }): void {
  const registers = [metrics.registry];
  new Gauge({ name: 'arus_control_leader', help: 'This replica leads the replicated control plane (1) or follows (0).', registers, collect() { this.set(p.election.isLeader() ? 1 : 0); } });
  new Gauge({ name: 'arus_control_applied_revision', help: "The etcd revision this replica's read model has applied.", registers, collect() { this.set(p.readModel.applied()); } });
  new Gauge({ name: 'arus_etcd_reachable', help: 'etcd answers this replica with quorum (1) or not (0).', registers, collect() { this.set(p.quorum.reachable() ? 1 : 0); } });
  new Gauge({ name: 'arus_control_fenced_writes', help: 'Writes as leader refused because another replica leads (fenced), since start.', registers, collect() { this.set(p.fenced.stats().fenced); } });
}
