import type { Config } from '../config/schema.js';
import type { StorageStats } from '../db/faults.js';
import type { HealthTracker } from '../health/tracker.js';
import type { AgentInfo, HealthEvent, ProbeResult } from '../health/types.js';
import type { LatencyMatrix, RegionCapacity } from '../snapshot/snapshot.js';
import type { ServingState } from '../snapshot/source.js';
import { assembleControl, type ControlOptions } from './assemble.js';
import { createBalancerEvidence } from './balancer-evidence.js';
import type { CapacityReport } from './capacity.js';
import { createCapacityLoop } from './capacity-loop.js';
import { createHostnameFollower, createLookup } from './hostnames.js';
import { createProbeIntake } from './probe-intake.js';
import { createProbeResults } from './probe-results.js';
import { createPublisher } from './publish.js';
import { createZoneKeys } from './zone-keys.js';
import { createServedConfig, type Target } from './served-config.js';
import { createStorageLog } from './storage-log.js';
import { createTicker } from './tick.js';
import { createTransitions } from './transitions.js';

// Control's public names, wherever they live.
export type { ControlOptions } from './assemble.js';
export { ReportRefused } from './probe-intake.js';
export type { Target } from './served-config.js';

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
  /** The state DNS answers from; replaced, never mutated. A function that needs no `this`: DNS calls it detached, per query. */
  readonly current: () => ServingState;
  /** Called after every new snapshot. */
  subscribe(fn: (state: ServingState) => void): () => void;
  targets(): { version: number; targets: Target[] };
  /** Takes a probe agent's results; throws ReportRefused when the agent is over its rate or one agent too many. */
  report(agent: AgentInfo, results: readonly ProbeResult[]): { accepted: number; targets: number };
  tracker(): HealthTracker;
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
  const { store, healthStore, log, now, mono, tracker, latency, capacity, settings } = assembleControl(opts);
  const storageLog = createStorageLog({ events: store, guard: store.guard, log, now });
  const served = createServedConfig(store);
  tracker.setEndpoints(served.endpoints(), now());
  const transitions = createTransitions({ events: store, log, now });
  const hostnames = createHostnameFollower({
    lookup: opts.lookup ?? createLookup(opts.resolvers),
    mono,
    onChange: (why) => publisher.publish(why),
    log: log.child({ component: 'hostnames' }),
  });
  const resolved = () => hostnames.resolved();
  const evidence = createBalancerEvidence();
  // On a replica only the leader takes rollover steps (and makes key pairs); the others serve what it published.
  const leading = opts.replica ? () => opts.replica!.leadership.isLeader() : undefined;
  const zoneKeys = opts.dnssecKeys ? createZoneKeys({ keys: opts.dnssecKeys, config: () => served.config(), events: store, log: log.child({ component: 'dnssec' }), now, leading }) : undefined;
  zoneKeys?.tick();
  const publisher = createPublisher({
    tracker, capacity: () => capacity.current(), resolved, claims: () => evidence.down(), dnssec: () => zoneKeys?.current(),
    served, healthStore, events: store, guard: store.guard, transitions, now, serving: opts.replica?.served,
  });
  hostnames.follow(hostnamesOf(served.config()));
  // A replica that starts to lead publishes at once, its transitions taken from what was published before.
  opts.replica?.leadership.subscribe((l) => {
    if (!l.leader) return;
    publisher.rebase(opts.replica!.served.current());
    publisher.publish('this replica leads now');
  });
  const results = createProbeResults({ results: healthStore, guard: store.guard, now, windowMs: settings.resultsWindowMs, maxRows: settings.maxResultRows });
  const capacityLoop = createCapacityLoop({ capacity, mono, transitions, publisher, evidence });
  // A forgotten agent's measurements go with it.
  const trackerEvents = (events: readonly HealthEvent[]) => {
    for (const e of events) if (e.kind === 'agent.forgotten') latency.forget(e.subject);
    transitions.health(events);
  };
  const intake = createProbeIntake({
    tracker, latency, mono, trackerEvents, publisher, results, storageLog,
    reportsPerSecond: settings.reportsPerSecond, reportBurst: settings.reportBurst, targetsVersion: () => served.targets().version,
  });
  const ticker = createTicker({
    tracker, latency, mono, log, trackerEvents, served, publisher, capacity: capacityLoop, results, storageLog, zoneKeys,
    tickMs: settings.tickMs, latencyEveryMs: settings.latencyEveryMs,
    configApplied: () => hostnames.follow(hostnamesOf(served.config())),
  });

  return {
    current: publisher.current,
    subscribe: (fn) => publisher.subscribe(fn),
    targets: () => served.targets(),
    report: (agent, results) => intake.report(agent, results),
    tracker: () => tracker,
    reportCapacity: (r) => capacityLoop.report(r),
    capacity: () => capacityLoop.view(),
    latency: () => latency.matrix(),
    tick: () => ticker.tick(),
    stats: () => ({
      storage: { ...store.guard.stats(), pendingEvents: store.pending().events, droppedEvents: store.pending().dropped, healthUnsaved: publisher.unsaved() },
      probes: { refused: intake.refused(), ...results.stats() },
    }),
    start: () => (ticker.start(), hostnames.start()),
    stop: () => (ticker.stop(), hostnames.stop()),
  };
}

/** The names of the configuration's hostname endpoints. */
function hostnamesOf(config: Config): string[] {
  return [...new Set(config.regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints.flatMap((e) => (e.hostname !== undefined ? [e.hostname] : [])))))];
}
