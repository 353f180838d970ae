// Control's storage on a replica of the replicated control plane. Reads come
// from the replica's SQLite read model (the configuration, the overrides),
// exactly as in the embedded mode; what control writes goes to etcd, and only
// while this replica leads: published health (with latency and capacity) as
// the leader's state, history rows in order, both fenced by its term. A
// follower runs the same tracker on the same reports and writes nothing, so
// that it holds the evidence the moment it takes over. A signed zone's key
// RRsets, signed by the leader's KSKs, are published with that state.
import type { FencedWriter } from '../db/etcd/fenced.js';
import type { PublishedSigning } from '../db/etcd/state.js';
import type { HealthStore } from '../db/health-store.js';
import type { Store } from '../db/store.js';
import type { ZoneSigning } from '../snapshot/snapshot.js';
import type { ControlHealthStore, ControlStore } from './storage.js';

/** What the publisher hands saveHealth (publish.ts); its `dnssec` is, here, what every replica serves. */
type SaveOptions = Parameters<ControlHealthStore['saveHealth']>[1];

/** The key RRsets in the published state's form (base64), and which ZSK signs: never a private key. */
export function publishedSigning(d: ZoneSigning): PublishedSigning {
  const b64 = (bs: readonly Buffer[]) => bs.map((b) => b.toString('base64'));
  return { keyRrsets: d.keyRrsets.map((r) => ({ type: r.type, ttl: r.ttl, rdata: b64(r.rdata), rrsigs: b64(r.rrsigs) })), ...(d.zsk ? { zsk: d.zsk.rdata.toString('base64') } : {}) };
}

export function createReplicaStorage(deps: { store: Store; healthStore: HealthStore; fenced: FencedWriter; isLeader: () => boolean; now?: () => number }): { store: ControlStore; healthStore: ControlHealthStore } {
  const { store, healthStore, fenced } = deps;
  const now = deps.now ?? Date.now;
  let dropped = 0;

  const controlStore: ControlStore = {
    getConfig: () => store.getConfig(),
    version: () => store.version(),
    deferEvent(e) {
      if (deps.isLeader()) fenced.event(e);
      else dropped++;
    },
    flushEvents: () => fenced.pending().events === 0,
    pending: () => ({ events: fenced.pending().events, dropped: dropped + fenced.stats().dropped }),
    // Control's own local writes (raw probe results) are to the replica's SQLite file.
    guard: store.guard,
  };

  const controlHealth: ControlHealthStore = {
    // Moves when an override changes (the read model bumps it); the leader's own state does not move it.
    version: () => healthStore.version(),
    listOverrides: () => healthStore.listOverrides(),
    saveHealth(health, o: SaveOptions) {
      if (deps.isLeader())
        fenced.publish({
          at: now(),
          health: Object.fromEntries(health),
          latency: (o.latency ?? {}),
          capacity: (o.capacity ?? {}),
          ...(o.resolved && Object.keys(o.resolved).length ? { resolved: o.resolved } : {}),
          ...(o.dnssec ? { dnssec: publishedSigning(o.dnssec) } : {}),
        });
      return healthStore.version();
    },
    recordResults: (agent, results, time) => healthStore.recordResults(agent, results, time),
    pruneResults: (before, maxRows) => healthStore.pruneResults(before, maxRows),
  };

  return { store: controlStore, healthStore: controlHealth };
}
