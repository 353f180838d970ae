// What the responder answers from: the zone compiled from the current snapshot
// and the caches that live as long as that snapshot (and locator), all in one
// object replaced in one assignment when either changes. A snapshot whose zone
// cannot be compiled is logged once and the previous one keeps answering.

import type { Locator } from '../geo/locator.js';
import type { Logger } from '../log.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { ServingState } from '../snapshot/source.js';
import type { ClientFacts } from '../steer/types.js';
import type { ResponderStats } from './responder-stats.js';
import { createSignedZone, type SignedZone } from './signed-answers.js';
import type { Body } from './wire.js';
import { zoneOf, type Zone } from './zone.js';

/** Where answers come from: a serving state (snapshot and locator together), or a snapshot and a fixed locator. */
export type SnapshotSource = { getState(): ServingState } | { getSnapshot(): Snapshot; locator: Locator };

/** `region`: index in `stats.answerRegions`, -1 when the answer has no address. */
export type Variant = {
  readonly body: Body;
  readonly scope: number;
  readonly region: number;
  /** Its signed twin, made for the signed zone's `generation()` it was made in (signed-answers.ts). */
  signed?: Body;
  signedIn?: number;
};
export type AnswerSet = { readonly variants: readonly Variant[]; next: number };
/** A client network as located, and the answer sets already found for it, by dynamic name and family. */
export type Client = { readonly facts: ClientFacts; readonly net: string; readonly sets: (AnswerSet | undefined)[] };

export type Served = {
  readonly snapshot: Snapshot;
  readonly locator: Locator;
  readonly zone: Zone;
  /** Clients by ECS address and prefix (IPv4, as a number: no string to build and hash per query). */
  readonly clients4: Map<number, Client>;
  /** Clients by ECS option octets (IPv6) or resolver address. */
  readonly clients: Map<string, Client>;
  readonly sets: Map<string, AnswerSet>;
  /** Some region sheds clients by capacity: answers depend on the client's /24 (/56). */
  readonly shedding: boolean;
  /** The zone is signed and this snapshot carries the ZSK: queries with DO get signed answers. */
  readonly signed?: SignedZone;
};

export type ServedDeps = {
  log: Logger;
  stats: ResponderStats;
  /** Called once per snapshot whose zone was compiled, before it answers its first query. */
  onCompiled: (snapshot: Snapshot) => void;
};

/** What answers come from now (`current`), and one made ahead for a state not yet current (`prepare`, then `adopt`). */
export type ServedState = (() => Served) & {
  /** The zone of `state` compiled and empty caches, not yet answered from (throws when it cannot be compiled). */
  prepare(state: ServingState): Served;
  /** Answers from `s` once the source returns its snapshot and locator (caches filled ahead are kept). */
  adopt(s: Served): void;
};

/**
 * Returns `current()`: what to answer from now. It reads the source on every
 * call (a snapshot is swapped whole) and compiles only when the snapshot or the
 * locator changed. Throws only when the first snapshot cannot be compiled.
 */
export function createServedState(source: SnapshotSource, deps: ServedDeps): ServedState {
  const { log, stats, onCompiled } = deps;
  const getState = 'getState' in source ? () => source.getState() : undefined;
  const getSnapshot = 'getSnapshot' in source ? () => source.getSnapshot() : undefined;
  const fixedLocator = 'locator' in source ? source.locator : undefined;
  let served: Served | undefined;
  let ahead: Served | undefined;
  let failed: Snapshot | undefined;
  let unsignedWarned = false;

  function prepare({ snapshot, locator }: ServingState): Served {
    const zone = zoneOf(snapshot);
    const shedding = Object.values(snapshot.capacity ?? {}).some((c) => c.shed > 0);
    const signed = createSignedZone(zone.apex, snapshot.dnssec);
    if (snapshot.dnssec && !signed && !unsignedWarned) {
      unsignedWarned = true;
      log.warn({ version: snapshot.version }, 'the zone is signed but this node holds no ZSK: answers to DO queries go out unsigned, and validating resolvers will reject them; name this node in zone.dnssec.signers');
    }
    const s: Served = { snapshot, locator, zone, clients4: new Map(), clients: new Map(), sets: new Map(), shedding, ...(signed ? { signed } : {}) };
    stats.compiles++;
    onCompiled(snapshot);
    log.debug({ version: snapshot.version, names: zone.nodes.size }, 'zone compiled');
    return s;
  }

  function current(): Served {
    const state = getState?.();
    const snapshot = state ? state.snapshot : getSnapshot!();
    const locator = state ? state.locator : fixedLocator!;
    if (served && served.snapshot === snapshot && served.locator === locator) return served;
    if (served && failed === snapshot) return served;
    if (ahead && ahead.snapshot === snapshot && ahead.locator === locator) {
      served = ahead;
      ahead = undefined;
      return served;
    }
    try {
      served = prepare({ snapshot, locator });
    } catch (err) {
      if (!served) throw err;
      // Keep answering from the last good zone rather than failing every query.
      failed = snapshot;
      log.error({ err, version: snapshot.version }, 'cannot compile zone; answering from the previous snapshot');
    }
    return served;
  }

  return Object.assign(current, { prepare, adopt: (s: Served) => void (ahead = s) });
}
