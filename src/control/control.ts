import type { Check, Config } from '../config/schema.js';
import type { HealthStore } from '../db/health-store.js';
import type { Store } from '../db/store.js';
import { createLocator } from '../geo/locator.js';
import { createLatencyMap } from '../health/latency.js';
import { applyOverrides } from '../health/overrides.js';
import { createHealthTracker, type HealthTrackerOptions } from '../health/tracker.js';
import type { AgentInfo, HealthEvent, ProbeResult } from '../health/types.js';
import type { Logger } from '../log.js';
import { buildSnapshot, endpointKey, type EndpointHealthInput, type LatencyMatrix, type RegionCapacity, type Snapshot } from '../snapshot/snapshot.js';
import type { ServingState } from '../snapshot/source.js';
import { createCapacityTracker, type CapacityChange, type CapacityReport } from './capacity.js';
import { countryMoves } from './moves.js';
import { statusChanges, statusOf } from './status.js';

export type Target = { endpoint: string; check: Check };

export type ControlOptions = {
  store: Store;
  healthStore: HealthStore;
  log: Logger;
  now?: () => number;
  tracker?: Omit<HealthTrackerOptions, 'now'>;
  /** Raw probe results older than this are pruned (ms). Default 15 minutes. */
  resultsWindowMs?: number;
  /** How often staleness, config changes and pruning are checked (ms). Default 250. */
  tickMs?: number;
  /** Latency changes reach the snapshot at most this often (ms). Default 10 s. */
  latencyEveryMs?: number;
};

export interface Control {
  /** The state DNS answers from; replaced, never mutated. */
  current(): ServingState;
  /** Called after every new snapshot. */
  subscribe(fn: (state: ServingState) => void): () => void;
  targets(): { version: number; targets: Target[] };
  report(agent: AgentInfo, results: readonly ProbeResult[]): { accepted: number; targets: number };
  tracker(): ReturnType<typeof createHealthTracker>;
  /** A balancer's capacity report: may start or stop shedding clients to the next region. */
  reportCapacity(report: CapacityReport): void;
  capacity(): { regions: Readonly<Record<string, RegionCapacity>>; reports: CapacityReport[] };
  latency(): LatencyMatrix;
  /** Re-reads configuration and overrides, evaluates staleness; normally run by the timer. */
  tick(): void;
  start(): void;
  stop(): void;
}

/**
 * The one writer of health. Raw probe results go into the tracker (quorum,
 * rise/fall, staleness); admin overrides and configuration marks sit on top;
 * every change becomes a new immutable snapshot, and every transition an
 * events row — with, for failovers, the countries that moved.
 */
export function createControl(opts: ControlOptions): Control {
  const { store, healthStore, log } = opts;
  const now = opts.now ?? Date.now;
  const tracker = createHealthTracker({ ...opts.tracker, now: now() });
  const latency = createLatencyMap();
  const capacity = createCapacityTracker();
  const windowMs = opts.resultsWindowMs ?? 15 * 60_000;
  const latencyEvery = opts.latencyEveryMs ?? 10_000;
  const listeners = new Set<(s: ServingState) => void>();

  let config = requireConfig();
  let configVersion = store.version();
  let healthVersion = healthStore.version();
  let generation = -1;
  let publishedLatency: LatencyMatrix = {};
  let latencyAt = 0;
  let lastPrune = 0;
  let timer: NodeJS.Timeout | undefined;
  let locator = createLocator({ database: config.zone.geoip.database, nets: config.zone.nets });
  let targetList = targetsOf(config);
  let targetsVersion = 1;
  tracker.setEndpoints(targetList.map((t) => t.endpoint).concat(untargeted(config)), now());
  let state: ServingState = { snapshot: build(), locator };
  generation = tracker.generation();

  function requireConfig(): Config {
    const c = store.getConfig();
    if (!c) throw new Error('the database holds no configuration: run `arus apply regions/` first');
    return c;
  }

  /** Effective health: tracker, then overrides on top (configuration marks are applied by buildSnapshot). */
  function effectiveHealth(): Map<string, EndpointHealthInput & { since: number }> {
    const tracked = tracker.all();
    const health = new Map<string, EndpointHealthInput & { since: number }>();
    for (const [key, h] of applyOverrides(tracked, healthStore.listOverrides())) {
      const t = tracked.get(key);
      health.set(key, { state: h.state, reason: h.reason, transition: !h.override && t?.transition !== undefined, since: t?.since ?? now() });
    }
    return health;
  }

  /** The SOA serial: both counters only grow, so their sum does too, across restarts. */
  function build(health = effectiveHealth()): Snapshot {
    return buildSnapshot(config, configVersion + healthVersion, { health, latency: publishedLatency, capacity: capacity.current() });
  }

  function publish(why: string): void {
    const before = state.snapshot;
    const health = effectiveHealth();
    healthStore.saveHealth(new Map([...health].map(([k, h]) => [k, { state: h.state, reason: h.reason, transition: h.transition ?? false, since: h.since }])));
    healthVersion = healthStore.version();
    const snapshot = build(health);
    state = { snapshot, locator };
    recordTransitions(before, snapshot, why);
    for (const fn of listeners) fn(state);
  }

  function recordTransitions(before: Snapshot, after: Snapshot, why: string): void {
    const at = now();
    const status = statusOf(after);
    for (const c of statusChanges(statusOf(before), status))
      store.recordEvent({ time: at, kind: c.kind, subject: c.subject, oldState: c.oldState, newState: c.newState, reason: c.reason, region: c.region });
    for (const m of countryMoves(before, after)) {
      const fromHealthy = m.from !== undefined && status.regions.get(m.from)?.status === 'up';
      const kind = fromHealthy ? 'failback' : 'failover';
      const reason = `${m.countries.join(', ')}: ${m.service} moved ${m.from ?? 'nowhere'} → ${m.to ?? 'nowhere'} (${why})`;
      store.recordEvent({
        time: at,
        kind,
        subject: `service:${m.service}`,
        oldState: m.from ?? 'none',
        newState: m.to ?? 'none',
        reason,
        region: (kind === 'failover' ? m.from : m.to) ?? null,
        data: { countries: m.countries, from: m.from ?? null, to: m.to ?? null, service: m.service },
      });
      log.info({ kind, service: m.service, from: m.from, to: m.to, countries: m.countries.length }, kind);
    }
  }

  function recordHealthEvents(events: readonly HealthEvent[]): void {
    for (const e of events) {
      store.recordEvent({ time: e.at, kind: e.kind, subject: e.subject, oldState: e.oldState, newState: e.newState, reason: e.reason, region: e.region ?? regionOf(e.subject) });
      if (e.kind !== 'agent.joined') log.info({ kind: e.kind, subject: e.subject, reason: e.reason }, 'health event');
    }
  }

  function recordCapacityChanges(changes: readonly CapacityChange[]): void {
    if (changes.length === 0) return;
    const at = now();
    for (const c of changes)
      store.recordEvent({ time: at, kind: c.kind, subject: `region:${c.region}`, oldState: `shed ${Math.round(c.from * 100)}%`, newState: `shed ${Math.round(c.to * 100)}%`, reason: c.reason, region: c.region });
    publish('capacity changed');
  }

  function maybePublish(why: string): void {
    if (tracker.generation() === generation) return;
    generation = tracker.generation();
    publish(why);
  }

  function tick(): void {
    const t = now();
    recordHealthEvents(tracker.tick(t));
    maybePublish('probe agents silent');
    recordCapacityChanges(capacity.tick(t));
    if (store.version() !== configVersion) {
      const next = requireConfig();
      const geoChanged = JSON.stringify([next.zone.nets, next.zone.geoip]) !== JSON.stringify([config.zone.nets, config.zone.geoip]);
      config = next;
      configVersion = store.version();
      if (geoChanged) locator = createLocator({ database: config.zone.geoip.database, nets: config.zone.nets });
      const nextTargets = targetsOf(config);
      if (JSON.stringify(nextTargets) !== JSON.stringify(targetList)) targetsVersion++;
      targetList = nextTargets;
      tracker.setEndpoints(targetList.map((x) => x.endpoint).concat(untargeted(config)), t);
      generation = tracker.generation();
      publish('configuration applied');
    } else if (healthStore.version() !== healthVersion) {
      healthVersion = healthStore.version();
      publish('admin override');
    }
    if (t - latencyAt >= latencyEvery) {
      const m = latency.matrix();
      if (JSON.stringify(m) !== JSON.stringify(publishedLatency) && materiallyDifferent(publishedLatency, m)) {
        publishedLatency = m;
        latencyAt = t;
        publish('latency map updated');
      }
    }
    if (t - lastPrune > 10_000) {
      lastPrune = t;
      healthStore.pruneResults(t - windowMs);
    }
  }

  return {
    current: () => state,
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    targets: () => ({ version: targetsVersion, targets: targetList }),
    report(agent, results) {
      const t = now();
      const accepted = results.filter((r) => typeof r.endpoint === 'string');
      healthStore.recordResults(agent, accepted);
      latency.ingest(agent, accepted);
      recordHealthEvents(tracker.ingest(agent, accepted, t));
      maybePublish(`probe reports from ${agent.id}`);
      return { accepted: accepted.length, targets: targetsVersion };
    },
    tracker: () => tracker,
    reportCapacity: (r) => recordCapacityChanges(capacity.report(r, now())),
    capacity: () => ({ regions: capacity.current(), reports: capacity.reports() }),
    latency: () => latency.matrix(),
    tick,
    start() {
      timer ??= setInterval(() => {
        try {
          tick();
        } catch (err) {
          log.error({ err }, 'control tick failed');
        }
      }, opts.tickMs ?? 250);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}

function regionOf(subject: string): string | undefined {
  const slash = subject.indexOf('/');
  return slash > 0 ? subject.slice(0, slash) : undefined;
}

/** What probes check: every endpoint with a health check. */
function targetsOf(config: Config): Target[] {
  return config.regions.flatMap((r) =>
    r.zones.flatMap((z) => z.endpoints.filter((e) => e.check).map((e) => ({ endpoint: endpointKey(r.id, z.id, e.address), check: e.check! }))),
  );
}

/** Endpoints without a check: tracked (so overrides apply) but never probed, so they keep the initial state. */
function untargeted(config: Config): string[] {
  return config.regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints.filter((e) => !e.check).map((e) => endpointKey(r.id, z.id, e.address))));
}

/** A latency shift worth re-steering for: a pair appears or moves by more than 20 %. */
function materiallyDifferent(a: LatencyMatrix, b: LatencyMatrix): boolean {
  for (const [p, row] of Object.entries(b))
    for (const [r, v] of Object.entries(row)) {
      const old = a[p]?.[r];
      if (old === undefined || Math.abs(v - old) > 0.2 * Math.max(old, 1)) return true;
    }
  return false;
}
