import type { Check, Config } from '../config/schema.js';
import type { HealthStore } from '../db/health-store.js';
import { storageFault, type StorageStats } from '../db/faults.js';
import type { NewEvent, Store } from '../db/store.js';
import { createLocator } from '../geo/locator.js';
import { anchoredClock } from '../health/clock.js';
import { createLatencyMap } from '../health/latency.js';
import { applyOverrides } from '../health/overrides.js';
import { createHealthTracker, type HealthTrackerOptions } from '../health/tracker.js';
import type { AgentInfo, HealthEvent, ProbeResult } from '../health/types.js';
import type { Logger } from '../log.js';
import { buildSnapshot, endpointKey, type EndpointHealthInput, type LatencyMatrix, type RegionCapacity, type Snapshot } from '../snapshot/snapshot.js';
import type { ServingState } from '../snapshot/source.js';
import { createCapacityTracker, type CapacityChange, type CapacityReport } from './capacity.js';
import { countryMoves } from './moves.js';
import { statusChanges, statusOf, type Status } from './status.js';

export type Target = { endpoint: string; check: Check };

export type ControlOptions = {
  store: Store;
  healthStore: HealthStore;
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
};

/** A probe report control will not take now: answered 429 with Retry-After. */
export class ReportRefused extends Error {
  constructor(
    message: string,
    readonly retryAfterS: number,
    readonly why: 'rate' | 'agents',
  ) {
    super(message);
    this.name = 'ReportRefused';
  }
}

export type ControlStats = {
  storage: StorageStats & {
    /** Events kept in memory until the database takes them, and events dropped because too many were kept. */
    pendingEvents: number;
    droppedEvents: number;
    /** Published health not yet written to the database. */
    healthUnsaved: boolean;
  };
  probes: {
    /** Reports refused with 429: an agent over its rate, or a new agent past the tracker's limit. */
    refused: { rate: number; agents: number };
    /** Raw results not kept: for no configured endpoint, older than another for the same endpoint in the report, or unwritable database. */
    resultsNotStored: number;
    /** Raw results pruned because more than `maxResultRows` were kept. */
    resultsPruned: number;
  };
};

export interface Control {
  /** The state DNS answers from; replaced, never mutated. */
  current(): ServingState;
  /** Called after every new snapshot. */
  subscribe(fn: (state: ServingState) => void): () => void;
  targets(): { version: number; targets: Target[] };
  /** Takes a probe agent's results; throws ReportRefused when the agent is over its rate or one agent too many. */
  report(agent: AgentInfo, results: readonly ProbeResult[]): { accepted: number; targets: number };
  tracker(): ReturnType<typeof createHealthTracker>;
  /** A balancer's capacity report: may start or stop shedding clients to the next region. */
  reportCapacity(report: CapacityReport): void;
  capacity(): { regions: Readonly<Record<string, RegionCapacity>>; reports: CapacityReport[] };
  latency(): LatencyMatrix;
  /**
   * Re-reads configuration and overrides, evaluates staleness, retries writes
   * the database refused; normally run by the timer. A storage fault never
   * escapes: control keeps serving from memory and retries later.
   */
  tick(): void;
  stats(): ControlStats;
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
  const mono = opts.monotonic ?? (opts.now ? opts.now : anchoredClock());
  const tracker = createHealthTracker({ ...opts.tracker, now: mono() });
  const latency = createLatencyMap();
  const capacity = createCapacityTracker();
  const windowMs = opts.resultsWindowMs ?? 15 * 60_000;
  const latencyEvery = opts.latencyEveryMs ?? 10_000;
  const maxResultRows = opts.maxResultRows ?? 200_000;
  const listeners = new Set<(s: ServingState) => void>();
  const intake = createIntake({ ratePerS: opts.reportsPerSecond ?? 10, burst: opts.reportBurst ?? 20, now: mono });
  const probeCounts = { refused: { rate: 0, agents: 0 }, resultsNotStored: 0, resultsPruned: 0 };
  const storageLog = createStorageLog(store, log, now);

  let config = requireConfig();
  let configVersion = store.version();
  /** The database's health version as last seen or written here: another writer (an override) moves it. */
  let seenHealthVersion = healthStore.version();
  /** The health part of the snapshot's version: moves on every publish, written or not. */
  let healthVersion = seenHealthVersion;
  /** Published health the database has not taken yet. */
  let unsaved: Map<string, EndpointHealthInput & { since: number }> | undefined;
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
    healthVersion++;
    const snapshot = build(health);
    state = { snapshot, locator };
    recordTransitions(before, snapshot, why);
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
    if (!store.guard.retryDue()) return;
    try {
      if (unsaved) {
        const health = unsaved;
        seenHealthVersion = healthStore.saveHealth(
          new Map([...health].map(([k, h]) => [k, { state: h.state, reason: h.reason, transition: h.transition ?? false, since: h.since }])),
          { atLeast: healthVersion },
        );
        unsaved = undefined;
      }
      store.flushEvents();
    } catch (err) {
      if (!storageFault(err)) throw err;
    }
  }

  function emit(e: NewEvent): void {
    store.deferEvent(e);
  }

  const RANK = { down: 0, degraded: 1, up: 2 } as const;
  /** How a region changed between two snapshots: > 0 better (health up, or sheds less), < 0 worse, 0 the same. */
  function changed(region: string, before: Snapshot, was: Status, after: Snapshot, now: Status): number {
    const a = was.regions.get(region)?.status;
    const b = now.regions.get(region)?.status;
    if (a === undefined || b === undefined) return 0;
    if (RANK[b] !== RANK[a]) return RANK[b] - RANK[a];
    return Math.sign((before.capacity[region]?.shed ?? 0) - (after.capacity[region]?.shed ?? 0));
  }

  function recordTransitions(before: Snapshot, after: Snapshot, why: string): void {
    const at = now();
    const was = statusOf(before);
    const status = statusOf(after);
    for (const c of statusChanges(was, status))
      emit({ time: at, kind: c.kind, subject: c.subject, oldState: c.oldState, newState: c.newState, reason: c.reason, region: c.region });
    for (const m of countryMoves(before, after)) {
      // Clients leaving a region that is down or got worse (drained, shedding more) fail over, even if
      // their destination came back in the same publish; clients returning to a region that got better
      // (came back up, sheds less) fail back; any other move (a configuration change) is a fail-over.
      const sourceBad = m.from !== undefined && (status.regions.get(m.from)?.status === 'down' || changed(m.from, before, was, after, status) < 0);
      const kind = !sourceBad && m.to !== undefined && changed(m.to, before, was, after, status) > 0 ? 'failback' : 'failover';
      const reason = `${m.countries.join(', ')}: ${m.service} moved ${m.from ?? 'nowhere'} → ${m.to ?? 'nowhere'} (${why})`;
      emit({
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
    // Stamped with the wall clock now: the tracker's clock measures durations, not dates.
    const at = now();
    for (const e of events) {
      if (e.kind === 'agent.forgotten') latency.forget(e.subject);
      emit({ time: at, kind: e.kind, subject: e.subject, oldState: e.oldState, newState: e.newState, reason: e.reason, region: e.region ?? regionOf(e.subject) });
      if (e.kind !== 'agent.joined') log.info({ kind: e.kind, subject: e.subject, reason: e.reason }, 'health event');
    }
  }

  function recordCapacityChanges(changes: readonly CapacityChange[]): void {
    if (changes.length === 0) return;
    const at = now();
    for (const c of changes)
      emit({ time: at, kind: c.kind, subject: `region:${c.region}`, oldState: `shed ${Math.round(c.from * 100)}%`, newState: `shed ${Math.round(c.to * 100)}%`, reason: c.reason, region: c.region });
    publish('capacity changed');
  }

  function maybePublish(why: string): void {
    if (tracker.generation() === generation) return;
    generation = tracker.generation();
    publish(why);
  }

  function tick(): void {
    try {
      step();
    } catch (err) {
      // Reading the database failed too (I/O error, corrupt file): serve what is in memory, retry next tick.
      if (!storageFault(err)) throw err;
    }
    storageLog.check();
  }

  function step(): void {
    const t = mono();
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
    } else if (healthStore.version() !== seenHealthVersion) {
      seenHealthVersion = healthStore.version();
      healthVersion = Math.max(healthVersion, seenHealthVersion);
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
    if (t - lastPrune > 10_000 && store.guard.retryDue()) {
      lastPrune = t;
      try {
        probeCounts.resultsPruned += healthStore.pruneResults(now() - windowMs, maxResultRows).overflow;
      } catch (err) {
        if (!storageFault(err)) throw err;
      }
    }
    persist();
  }

  /** Raw results for `/v1/probes`, at receipt time when the agent's clock is off; best effort. */
  function storeResults(agent: AgentInfo, results: readonly ProbeResult[], ignored: number): void {
    probeCounts.resultsNotStored += ignored;
    if (results.length === 0) return;
    if (!store.guard.retryDue()) return void (probeCounts.resultsNotStored += results.length);
    // The newest result per endpoint: what /v1/probes shows, and rows bounded by endpoints, not by the report's size.
    const newest = new Map<string, ProbeResult>();
    for (const r of results) if (!(newest.get(r.endpoint)?.at! >= r.at)) newest.set(r.endpoint, r);
    probeCounts.resultsNotStored += results.length - newest.size;
    const received = now();
    try {
      healthStore.recordResults(agent, [...newest.values()], (r) => Math.min(received, Math.max(received - windowMs, r.at)));
    } catch (err) {
      if (!storageFault(err)) throw err;
      probeCounts.resultsNotStored += newest.size;
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
      const t = mono();
      if (!tracker.admits(agent.id)) {
        probeCounts.refused.agents++;
        storageLog.limited(agent.id, 'agents');
        throw new ReportRefused(`too many probe agents: ${tracker.agents().length} tracked and all live; agent ${agent.id} is not taken`, 60, 'agents');
      }
      const wait = intake.take(agent.id);
      if (wait > 0) {
        probeCounts.refused.rate++;
        storageLog.limited(agent.id, 'rate');
        throw new ReportRefused(`agent ${agent.id} reports too often: at most ${opts.reportsPerSecond ?? 10} a second`, Math.ceil(wait / 1000), 'rate');
      }
      // Only results for configured endpoints are kept (memory and disk); the rest are counted as accepted and ignored.
      const accepted = results.filter((r) => typeof r.endpoint === 'string' && tracker.tracks(r.endpoint));
      latency.ingest(agent, accepted);
      recordHealthEvents(tracker.ingest(agent, accepted, t));
      maybePublish(`probe reports from ${agent.id}`);
      storeResults(agent, accepted, results.length - accepted.length);
      return { accepted: results.length, targets: targetsVersion };
    },
    tracker: () => tracker,
    // Judged by receipt time on control's own clock: a balancer's clock may be off, and the wall clock may jump.
    reportCapacity: (r) => recordCapacityChanges(capacity.report({ ...r, at: mono() }, mono())),
    capacity: () => ({ regions: capacity.current(), reports: capacity.reports() }),
    latency: () => latency.matrix(),
    tick,
    stats: () => ({
      storage: { ...store.guard.stats(), pendingEvents: store.pending().events, droppedEvents: store.pending().dropped, healthUnsaved: unsaved !== undefined },
      probes: { refused: { ...probeCounts.refused }, resultsNotStored: probeCounts.resultsNotStored, resultsPruned: probeCounts.resultsPruned },
    }),
    start() {
      let failures = 0;
      timer ??= setInterval(() => {
        try {
          tick();
          failures = 0;
        } catch (err) {
          // Four times a second: say it once, then every minute or so.
          if (failures++ % 240 === 0) log.error({ err, failures }, 'control tick failed');
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

/** Per-agent token buckets on a monotonic clock; `take` is the wait (ms) before the agent may report again, 0 when it may now. */
function createIntake(opts: { ratePerS: number; burst: number; now: () => number }) {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    take(id: string): number {
      const t = opts.now();
      const b = buckets.get(id) ?? { tokens: opts.burst, at: t };
      b.tokens = Math.min(opts.burst, b.tokens + (Math.max(0, t - b.at) / 1000) * opts.ratePerS);
      b.at = t;
      buckets.delete(id);
      buckets.set(id, b);
      // Only admitted agents get here, so this is bounded by the tracker's limit; full buckets are forgotten first.
      if (buckets.size > 4096) for (const [k, v] of buckets) if (buckets.size > 2048 && v.tokens >= opts.burst - 1) buckets.delete(k);
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return 0;
      }
      return ((1 - b.tokens) / opts.ratePerS) * 1000;
    },
  };
}

/**
 * Says when the database stops and starts taking writes (once each, with a
 * reminder at most every minute), records both in the history once it can,
 * and records refused probe reports as at most one \`probe.limited\` event a minute.
 */
function createStorageLog(store: Store, log: Logger, now: () => number) {
  let lastReminder = 0;
  let limited = new Map<string, { rate: number; agents: number }>();
  let others = 0;
  let lastLimitedEvent = -Infinity;
  store.guard.subscribe((change) => {
    if (change.failing) {
      log.warn({ kind: change.error.kind, code: change.error.code, err: change.error.message }, 'database cannot take writes: serving from memory, retrying with back-off');
      lastReminder = now();
      store.deferEvent({ kind: 'storage.failed', subject: 'database', oldState: 'writable', newState: change.error.kind, reason: `${change.error.message}: DNS answers from memory meanwhile` });
    } else {
      const pending = store.pending();
      log.info({ afterMs: Math.round(change.afterMs), pendingEvents: pending.events, droppedEvents: pending.dropped }, 'database takes writes again');
      store.deferEvent({
        kind: 'storage.recovered', subject: 'database', oldState: change.kind, newState: 'writable',
        reason: `the database took writes again after ${(change.afterMs / 1000).toFixed(1)} s; events kept meanwhile are written with their own times${pending.dropped ? ` (${pending.dropped} dropped so far: too many kept)` : ''}`,
      });
    }
  });

  /** One event for the refusals since the last one. */
  function recordLimited(): void {
    const agents = [...limited].map(([agent, n]) => ({ agent, ...n }));
    const total = agents.reduce((n, a) => n + a.rate + a.agents, 0) + others;
    const named = agents.slice(0, 5).map((a) => `${a.agent} (${a.rate ? `${a.rate} over its rate` : `${a.agents} past the agent limit`})`);
    store.deferEvent({
      kind: 'probe.limited', subject: 'probes', oldState: 'accepted', newState: 'limited',
      reason: `${total} probe report${total === 1 ? '' : 's'} refused with 429: ${named.join(', ')}${agents.length > 5 || others ? ' and others' : ''}`,
      data: { agents, others },
    });
    log.warn({ refused: total, agents: agents.length }, 'probe reports refused');
    limited = new Map();
    others = 0;
    lastLimitedEvent = now();
  }

  return {
    check(): void {
      const s = store.guard.stats();
      if (s.failing && now() - lastReminder >= 60_000) {
        lastReminder = now();
        log.warn({ kind: s.failing.kind, since: s.failing.since, pendingEvents: store.pending().events, err: s.failing.message }, 'database still cannot take writes');
      }
      if (limited.size + others > 0 && Math.abs(now() - lastLimitedEvent) >= 60_000) recordLimited();
    },
    /** Counts a refused report: the first of a minute is recorded at once, the rest together a minute later. */
    limited(agent: string, why: 'rate' | 'agents'): void {
      const n = limited.get(agent) ?? (limited.size < 100 ? { rate: 0, agents: 0 } : undefined);
      if (n) {
        n[why]++;
        limited.set(agent, n);
      } else others++;
      if (Math.abs(now() - lastLimitedEvent) >= 60_000) recordLimited();
    },
  };
}
