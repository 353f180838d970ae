// Publishing health: effective health (the tracker, admin overrides on top)
// becomes a new immutable snapshot with a version that only grows; what it
// changed goes to history, and the published health to the store — later, with
// back-off, when the store refuses it, since DNS already answers from memory.
import { storageFault } from '../db/faults.js';
import type { StoredHealth } from '../db/health-store.js';
import { applyOverrides, type Override } from '../health/overrides.js';
import type { HealthTracker } from '../health/tracker.js';
import type { EndpointHealth } from '../health/types.js';
import { buildSnapshot, endpointKey, type EndpointHealthInput, type LatencyMatrix, type RegionCapacity, type ResolvedMap, type Snapshot, type ZoneSigning } from '../snapshot/snapshot.js';
import type { ServingState } from '../snapshot/source.js';
import { endpointName } from '../config/schema.js';
import type { BalancerClaim } from './balancer-evidence.js';
import type { ServedConfig } from './served-config.js';
import type { EventLog, HealthRecord, WriteGuard } from './storage.js';
import type { Transitions } from './transitions.js';

type PublishedHealth = Map<string, EndpointHealthInput & { since: number; override?: boolean }>;

export interface Publisher {
  /** The state DNS answers from; replaced, never mutated. A property: handed to the DNS responder as it is, called per query. */
  readonly current: () => ServingState;
  subscribe(fn: (state: ServingState) => void): () => void;
  /** A new snapshot now. */
  publish(why: string): void;
  /** A new snapshot if the tracker changed since the last one it was asked about. */
  publishIfTrackerMoved(why: string): void;
  /** The tracker's endpoints were set anew: a new snapshot of it now. */
  publishTrackerReset(why: string): void;
  /** A new snapshot if another writer (an override) moved the store's health version. */
  publishIfOverridden(why: string): void;
  /** A new snapshot with this latency map. */
  publishLatency(matrix: LatencyMatrix, why: string): void;
  /** The latency map in the current snapshot. */
  latency(): LatencyMatrix;
  /** Writes published health and the events kept meanwhile, when the store is due a retry. */
  persist(): void;
  /** Whether published health is not yet in the store. */
  unsaved(): boolean;
  /** Takes `s` as the last published state (a replica that starts to lead: transitions are from what was published). */
  rebase(s: ServingState): void;
}

export function createPublisher(deps: {
  tracker: HealthTracker;
  capacity: () => Readonly<Record<string, RegionCapacity>>;
  /** Hostname endpoints' resolutions. */
  resolved: () => ResolvedMap;
  /** Regions whose balancers say no instance can serve (balancer-evidence.ts): their endpoints down on top of the probes'. */
  claims?: () => ReadonlyMap<string, BalancerClaim>;
  /** A signed zone's keys (zone-keys.ts); undefined for an unsigned one. */
  dnssec?: () => ZoneSigning | undefined;
  served: ServedConfig;
  healthStore: HealthRecord;
  events: EventLog;
  guard: WriteGuard;
  transitions: Transitions;
  now: () => number;
  /**
   * What is served, when it is not what this publisher builds: a replica of the
   * replicated control plane serves the snapshot of its read model, the same
   * on every replica (control/replica-served.ts); this publisher's snapshots
   * then only decide transitions and what the leader publishes.
   */
  serving?: { readonly current: () => ServingState; subscribe(fn: (s: ServingState) => void): () => void };
}): Publisher {
  const { tracker, served, healthStore, events, guard, transitions, now } = deps;
  const listeners = new Set<(s: ServingState) => void>();
  /** The database's health version as last seen or written here: another writer (an override) moves it. */
  let seenHealthVersion = healthStore.version();
  /** The health part of the snapshot's version: moves on every publish, written or not. */
  // One past what was saved: a restarted control may publish other content (latency, capacity) than it last saved, never under the same version.
  let healthVersion = seenHealthVersion + 1;
  /** Published health the database has not taken yet. */
  let unsaved: PublishedHealth | undefined;
  let publishedLatency: LatencyMatrix = {};
  let state: ServingState = { snapshot: build(), locator: served.locator() };
  let generation = tracker.generation();

  /** The SOA serial: both counters only grow, so their sum does too, across restarts. */
  function build(health = effectiveHealth()): Snapshot {
    return buildSnapshot(served.config(), served.version() + healthVersion, { health, latency: publishedLatency, capacity: deps.capacity(), resolved: deps.resolved(), dnssec: deps.dnssec?.() });
  }

  function effectiveHealth(): PublishedHealth {
    const health = effectiveOf(tracker.all(), healthStore.listOverrides(), now);
    const claims = deps.claims?.();
    if (claims?.size) claimed(health, served.config(), claims);
    return health;
  }

  function publish(why: string): void {
    const before = state.snapshot;
    const health = effectiveHealth();
    healthVersion++;
    const snapshot = build(health);
    state = { snapshot, locator: served.locator() };
    transitions.published(before, snapshot, why);
    unsaved = health;
    persist();
    for (const fn of listeners) fn(state);
  }

  /**
   * Writes published health and the events kept meanwhile. The snapshot in
   * memory is already served: a database that cannot take the write (locked,
   * read-only, full) delays the copy on disk, not DNS; retried with back-off.
   */
  function persist(): void {
    if (!guard.retryDue()) return;
    try {
      if (unsaved) {
        seenHealthVersion = healthStore.saveHealth(storedOf(unsaved), {
          atLeast: healthVersion,
          latency: publishedLatency,
          capacity: deps.capacity(),
          resolved: state.snapshot.resolved,
          dnssec: state.snapshot.dnssec,
        });
        unsaved = undefined;
      }
      events.flushEvents();
    } catch (err) {
      if (!storageFault(err)) throw err;
    }
  }

  const local = {
    current: () => state,
    subscribe(fn: (s: ServingState) => void) {
      listeners.add(fn);
      return () => void listeners.delete(fn);
    },
  };
  return {
    current: deps.serving?.current ?? local.current,
    subscribe: (fn) => (deps.serving ?? local).subscribe(fn),
    rebase(s) {
      state = s;
    },
    publish,
    publishIfTrackerMoved(why) {
      if (tracker.generation() === generation) return;
      generation = tracker.generation();
      publish(why);
    },
    publishTrackerReset(why) {
      generation = tracker.generation();
      publish(why);
    },
    publishIfOverridden(why) {
      if (healthStore.version() === seenHealthVersion) return;
      seenHealthVersion = healthStore.version();
      healthVersion = Math.max(healthVersion, seenHealthVersion);
      publish(why);
    },
    publishLatency(matrix, why) {
      publishedLatency = matrix;
      publish(why);
    },
    latency: () => publishedLatency,
    persist,
    unsaved: () => unsaved !== undefined,
  };
}

/** Effective health: tracker, then overrides on top (configuration marks are applied by buildSnapshot). */
function effectiveOf(tracked: ReadonlyMap<string, EndpointHealth>, overrides: readonly Override[], now: () => number): PublishedHealth {
  const health: PublishedHealth = new Map();
  for (const [key, h] of applyOverrides(tracked, overrides)) {
    const t = tracked.get(key);
    health.set(key, { state: h.state, reason: h.reason, transition: !h.override && t?.transition !== undefined, since: t?.since ?? now(), ...(h.override ? { override: true } : {}) });
  }
  return health;
}

/**
 * The balancers' claims on top: every endpoint of a region they say cannot
 * serve is down, with their reason, unless an admin override decides it.
 */
function claimed(health: PublishedHealth, config: ReturnType<ServedConfig['config']>, claims: ReadonlyMap<string, BalancerClaim>): void {
  for (const r of config.regions) {
    const claim = claims.get(r.id);
    if (!claim) continue;
    for (const z of r.zones)
      for (const e of z.endpoints) {
        const key = endpointKey(r.id, z.id, endpointName(e));
        const h = health.get(key);
        if (h?.override || h?.state === 'down') continue;
        health.set(key, { state: 'down', reason: claim.reason, transition: false, since: claim.since });
      }
  }
}

function storedOf(health: PublishedHealth): Map<string, StoredHealth> {
  return new Map([...health].map(([k, h]) => [k, { state: h.state, reason: h.reason, transition: h.transition ?? false, since: h.since }]));
}
