import { createLocator } from '../geo/locator.js';
import type { Logger } from '../log.js';
import { decodeSnapshot } from './document.js';
import type { ServingState } from './source.js';

// The state a node answers from, and the one way into it: a document is
// validated (checksum, schemas, health, a locator that can be built) before
// it is swapped in whole; a refused one is counted and logged, and the state
// held stays. Where documents come from is the caller's business.

export type SnapshotOrigin = 'disk' | 'control';

export type SwapStats = {
  version?: number;
  from?: SnapshotOrigin;
  applied: Record<SnapshotOrigin, number>;
  rejected: Record<SnapshotOrigin, number>;
};

export interface SnapshotSwap {
  /** The state to answer from; throws while there is none. A property: DNS calls it detached, per query. */
  readonly current: () => ServingState;
  /** The version held, undefined while there is none. */
  readonly version: number | undefined;
  /** Resolves with the first state once there is one. */
  ready(): Promise<ServingState>;
  /** Validates and swaps in a document; false (and the old state kept) when it is refused or nothing new. */
  offer(text: string, source: SnapshotOrigin): boolean;
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
  const waiting: ((s: ServingState) => void)[] = [];

  function offer(text: string, source: SnapshotOrigin): boolean {
    let next: ServingState;
    let digest: string;
    try {
      const decoded = decodeSnapshot(text);
      digest = decoded.sha256;
      if (decoded.sha256 === sha256) return false;
      const { snapshot } = decoded;
      const old = state?.snapshot.zone;
      const sameGeo = old && JSON.stringify([old.geoip, old.nets]) === JSON.stringify([snapshot.zone.geoip, snapshot.zone.nets]);
      next = { snapshot, locator: sameGeo ? state!.locator : createLocator({ database: snapshot.zone.geoip.database, nets: snapshot.zone.nets }) };
    } catch (err) {
      rejected[source]++;
      log.warn({ from: source, err: (err as Error).message, keeping: state?.snapshot.version ?? null }, 'snapshot rejected');
      return false;
    }
    const previous = state?.snapshot.version;
    state = next;
    sha256 = digest;
    from = source;
    applied[source]++;
    const version = next.snapshot.version;
    if (previous !== undefined && version < previous) log.warn({ version, previous }, "control's snapshot version went back (was its database restored?); applied");
    else log.info({ version, previous: previous ?? null, from: source }, 'snapshot applied');
    for (const resolve of waiting.splice(0)) resolve(next);
    deps.onApplied?.(text, source);
    return true;
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
    stats: () => ({ version: state?.snapshot.version, from, applied: { ...applied }, rejected: { ...rejected } }),
  };
}
