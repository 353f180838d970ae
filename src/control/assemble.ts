// Assembling control: its options with their defaults, its two clocks, and the
// state the other modules share — the health tracker, the latency map and the
// capacity tracker.
import type { DnssecKeyStore } from '../db/dnssec-keys.js';
import { anchoredClock } from '../health/clock.js';
import { createLatencyMap, type LatencyMap } from '../health/latency.js';
import { createHealthTracker, type HealthTracker, type HealthTrackerOptions } from '../health/tracker.js';
import type { Logger } from '../log.js';
import { createCapacityTracker, type CapacityTracker } from './capacity.js';
import type { ServingState } from '../snapshot/source.js';
import type { Lookup } from './hostnames.js';
import type { ControlHealthStore, ControlStore } from './storage.js';

export type ControlOptions = {
  /** Configuration and history: SQLite's Store, or any other ControlStore. */
  store: ControlStore;
  /** Overrides, published health and raw results: SQLite's HealthStore, or any other ControlHealthStore. */
  healthStore: ControlHealthStore;
  log: Logger;
  /** The wall clock: the time of events and of stored results (ms). Date.now unless set. */
  now?: () => number;
  /**
   * The clock durations are measured with (staleness, rate limits, back-off):
   * epoch-like ms that never jump when the wall clock is stepped. Unless set,
   * the wall clock at start advanced by performance.now() — or `now` when only
   * that is given (tests).
   */
  monotonic?: () => number;
  tracker?: Omit<HealthTrackerOptions, 'now'>;
  /** Raw probe results older than this are pruned (ms). Default 15 minutes. */
  resultsWindowMs?: number;
  /** Raw probe results kept at most, the oldest pruned first. Default 200,000. */
  maxResultRows?: number;
  /** Each agent may report this many times a second on average... Default 10. */
  reportsPerSecond?: number;
  /** ...in bursts of up to this many. Default 20. */
  reportBurst?: number;
  /** How often staleness, config changes and pruning are checked (ms). Default 250. */
  tickMs?: number;
  /** Latency changes reach the snapshot at most this often (ms). Default 10 s. */
  latencyEveryMs?: number;
  /** Where hostname endpoints' names are resolved (HOST or HOST:PORT); the system's resolvers unless set. */
  resolvers?: string[];
  /** How a name is looked up (tests); a lookup at `resolvers` unless set. */
  lookup?: Lookup;
  /** The zone's DNSSEC keys (`arus dnssec init`): the zone is signed while it has an active KSK and ZSK. */
  dnssecKeys?: DnssecKeyStore;
  /**
   * A replica of the replicated control plane (`arus control --etcd`): it
   * serves its read model's snapshot, and publishes (through its storage) only
   * while it leads; when it starts to lead it publishes at once, from the
   * state that was published.
   */
  replica?: {
    served: { readonly current: () => ServingState; subscribe(fn: (s: ServingState) => void): () => void };
    leadership: { isLeader(): boolean; subscribe(fn: (l: { leader: boolean }) => void): () => void };
  };
};

/** What control's modules are built from. */
export type ControlParts = {
  store: ControlStore;
  healthStore: ControlHealthStore;
  log: Logger;
  /** The wall clock (ms). */
  now: () => number;
  /** The monotonic clock (ms). */
  mono: () => number;
  tracker: HealthTracker;
  latency: LatencyMap;
  capacity: CapacityTracker;
  settings: Required<Pick<ControlOptions, 'resultsWindowMs' | 'maxResultRows' | 'reportsPerSecond' | 'reportBurst' | 'tickMs' | 'latencyEveryMs'>>;
};

export function assembleControl(opts: ControlOptions): ControlParts {
  const now = opts.now ?? Date.now;
  const mono = opts.monotonic ?? (opts.now ? opts.now : anchoredClock());
  return {
    store: opts.store,
    healthStore: opts.healthStore,
    log: opts.log,
    now,
    mono,
    tracker: createHealthTracker({ ...opts.tracker, now: mono() }),
    latency: createLatencyMap(),
    capacity: createCapacityTracker(),
    settings: {
      resultsWindowMs: opts.resultsWindowMs ?? 15 * 60_000,
      maxResultRows: opts.maxResultRows ?? 200_000,
      reportsPerSecond: opts.reportsPerSecond ?? 10,
      reportBurst: opts.reportBurst ?? 20,
      tickMs: opts.tickMs ?? 250,
      latencyEveryMs: opts.latencyEveryMs ?? 10_000,
    },
  };
}
