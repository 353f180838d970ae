import { createLocator } from '../geo/locator.js';
import type { Logger } from '../log.js';
import { decodeSnapshot } from './document.js';
import type { ServingState } from './source.js';

// The state a node answers from, and the one way into it: a document is
// validated (checksum, schemas, health, a locator that can be built) before
// it is swapped in whole; a refused one is counted and logged, and the state
// held stays. Versions only go forward: a document older than the one held
// (a replica that lags) is refused, and one with the held version but other
// content (two replicas that disagree) is refused with a warning. Where
// documents come from is the caller's business.

export type SnapshotOrigin = 'disk' | 'control';

/**
 * What became of an offered document: swapped in; the one held already; older
 * than the one held; the held version with other content; invalid.
 */
export type OfferOutcome = 'applied' | 'same' | 'older' | 'conflict' | 'rejected';

export type SwapStats = {
  version?: number;
  from?: SnapshotOrigin;
  applied: Record<SnapshotOrigin, number>;
  rejected: Record<SnapshotOrigin, number>;
  /** Valid documents refused for being older than the one held. */
  older: number;
  /** Valid documents refused for having the held version but another sha256. */
  conflicts: number;
};

export interface SnapshotSwap {
  /** The state to answer from; throws while there is none. A property: DNS calls it detached, per query. */
  readonly current: () => ServingState;
  /** The version held, undefined while there is none. */
  readonly version: number | undefined;
  /** Resolves with the first state once there is one. */
  ready(): Promise<ServingState>;
  /** Validates and, when it is newer than the one held, swaps in a document; anything else keeps the old state. */
  offer(text: string, source: SnapshotOrigin): OfferOutcome;
  /** Counts a document that could not even be read as refused. */
  refused(source: SnapshotOrigin): void;
  stats(): SwapStats;
}

export function createSnapshotSwap(deps: { log: Logger; onApplied?(text: string, source: SnapshotOrigin): void }): SnapshotSwap {
  const { log } = deps;
  let state: ServingState | undefined;
  let sha256: string | undefined;
  let from: SnapshotOrigin | undefined;
  const applied = { disk: 0, control: 0 };
  const rejected = { disk: 0, control: 0 };
  const counts = { older: 0, conflicts: 0 };
  const waiting: ((s: ServingState) => void)[] = [];

  function offer(text: string, source: SnapshotOrigin): OfferOutcome {
    let next: ServingState;
    let digest: string;
    try {
      const decoded = decodeSnapshot(text);
      digest = decoded.sha256;
      const { snapshot } = decoded;
      const held = state?.snapshot.version;
      if (held !== undefined && snapshot.version <= held) return refuse(snapshot.version, held, digest);
      const old = state?.snapshot.zone;
      const sameGeo = old && JSON.stringify([old.geoip, old.nets]) === JSON.stringify([snapshot.zone.geoip, snapshot.zone.nets]);
      next = { snapshot, locator: sameGeo ? state!.locator : createLocator({ database: snapshot.zone.geoip.database, nets: snapshot.zone.nets }) };
    } catch (err) {
      rejected[source]++;
      log.warn({ from: source, err: (err as Error).message, keeping: state?.snapshot.version ?? null }, 'snapshot rejected');
      return 'rejected';
    }
    const previous = state?.snapshot.version;
    state = next;
    sha256 = digest;
    from = source;
    applied[source]++;
    log.info({ version: next.snapshot.version, previous: previous ?? null, from: source }, 'snapshot applied');
    for (const resolve of waiting.splice(0)) resolve(next);
    deps.onApplied?.(text, source);
    return 'applied';
  }

  /** A valid document that is not newer than the one held. Whoever offered it says who lags (once, not per document). */
  function refuse(version: number, held: number, digest: string): OfferOutcome {
    if (version < held) {
      counts.older++;
      log.debug({ version, held }, 'snapshot older than the one held; keeping it');
      return 'older';
    }
    if (digest === sha256) return 'same';
    counts.conflicts++;
    log.warn({ version, sha256: digest, held: sha256 }, 'two snapshots with the same version and different content (do replicas disagree?); keeping the one held');
    return 'conflict';
  }

  return {
    current() {
      if (!state) throw new Error('no snapshot yet: neither the snapshot file nor control has given one');
      return state;
    },
    get version() {
      return state?.snapshot.version;
    },
    ready: () => (state ? Promise.resolve(state) : new Promise((resolve) => waiting.push(resolve))),
    offer,
    refused(source) {
      rejected[source]++;
    },
    stats: () => ({ version: state?.snapshot.version, from, applied: { ...applied }, rejected: { ...rejected }, ...counts }),
  };
}
