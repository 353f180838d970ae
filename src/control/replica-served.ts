// What a replica serves: the snapshot built from its read model alone — the
// configuration and the leader's published state, both copied from etcd — so
// that every replica at the same revision serves the same snapshot (same
// version, same sha256), whichever of them leads. A signed zone's key RRsets
// are the leader's (signed once: ECDSA signatures differ each time), and the
// ZSK the one they name, opened from this replica's copy of the keys.
import type { Config } from '../config/schema.js';
import type { PublishedSigning, PublishedState } from '../db/etcd/state.js';
import type { SigningKey } from '../dnssec/keys.js';
import { createLocator } from '../geo/locator.js';
import type { Logger } from '../log.js';
import { buildSnapshot, type EndpointHealthInput, type ZoneSigning } from '../snapshot/snapshot.js';
import type { ServingState } from '../snapshot/source.js';

export interface ReplicaServed {
  readonly current: () => ServingState;
  subscribe(fn: (s: ServingState) => void): () => void;
  /** Builds again if the read model moved; true when the state changed. */
  refresh(): boolean;
}

export function createReplicaServed(deps: {
  config: { getConfig(): Config | undefined; version(): number };
  state: () => { doc: PublishedState; revision: number } | undefined;
  /** The ZSK whose DNSKEY RDATA is `dnskey` (base64), its private key opened; throws when it cannot be. */
  zsk?: (dnskey: string) => SigningKey | undefined;
  log: Logger;
}): ReplicaServed {
  const listeners = new Set<(s: ServingState) => void>();
  /** The snapshot's version: the newest revision among the configuration and the published state. */
  const version = () => Math.max(deps.config.version(), deps.state()?.revision ?? 0);
  let state = build();

  function build(previous?: ServingState): ServingState {
    const config = deps.config.getConfig();
    if (!config) throw new Error('the replicated store holds no configuration: apply it with `arus apply --etcd …`');
    const published = deps.state()?.doc;
    const health = published ? new Map<string, EndpointHealthInput>(Object.entries(published.health)) : undefined;
    const dnssec = published?.dnssec && signingOf(published.dnssec);
    const snapshot = buildSnapshot(config, version(), { health, latency: published?.latency, capacity: published?.capacity, resolved: published?.resolved, dnssec });
    const sameGeo =
      previous && JSON.stringify(previous.snapshot.zone.geoip) === JSON.stringify(config.zone.geoip) && JSON.stringify(previous.snapshot.zone.nets) === JSON.stringify(config.zone.nets);
    const locator = sameGeo ? previous.locator : createLocator({ database: config.zone.geoip.database, nets: config.zone.nets });
    return { snapshot, locator };
  }

  /**
   * The published key RRsets and the ZSK they name. A ZSK this replica cannot
   * open fails the build (the last snapshot is kept, the error logged): a
   * snapshot without it would differ from the other replicas' at the same version.
   */
  function signingOf(p: PublishedSigning): ZoneSigning {
    const keyRrsets = p.keyRrsets.map((r) => ({ type: r.type, ttl: r.ttl, rdata: r.rdata.map((b) => Buffer.from(b, 'base64')), rrsigs: r.rrsigs.map((b) => Buffer.from(b, 'base64')) }));
    if (p.zsk === undefined) return { keyRrsets };
    const zsk = deps.zsk?.(p.zsk);
    if (!zsk) throw new Error(`the published state names a ZSK this replica's read model does not hold (DNSKEY ${p.zsk.slice(0, 16)}…)`);
    return { keyRrsets, zsk };
  }

  return {
    current: () => state,
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    refresh() {
      if (version() === state.snapshot.version) return false;
      try {
        state = build(state);
      } catch (err) {
        deps.log.error({ err }, 'cannot build the snapshot from the read model; keeping the last one');
        return false;
      }
      for (const fn of listeners) fn(state);
      return true;
    },
  };
}
