// The storage control needs, declared by control so that more than one engine
// can stand behind it: today SQLite's Store and HealthStore satisfy these as they
// are; a replicated engine (etcd, with a SQLite read model) plugs in the same way.
// What an implementation must guarantee is in this folder's README.
import type { Config } from '../config/schema.js';
import type { StorageListener, StorageStats } from '../db/faults.js';
import type { StoredHealth } from '../db/health-store.js';
import type { NewEvent } from '../db/history.js';
import type { Override } from '../health/overrides.js';
import type { AgentInfo, ProbeResult } from '../health/types.js';
import type { LatencyMatrix, RegionCapacity, ResolvedMap, ZoneSigning } from '../snapshot/snapshot.js';

/** The configuration control serves, and the version that says when to re-read it. */
export interface ConfigReader {
  /** The whole configuration; undefined before one is applied. */
  getConfig(): Config | undefined;
  /** Moves whenever `getConfig()` would answer differently, and only grows. */
  version(): number;
}

/** History written by background work: it must not fail with the disk, so it is kept and written later. */
export interface EventLog {
  /** Writes the event now if the store takes it, else keeps it, in order, for `flushEvents()`. */
  deferEvent(event: NewEvent): void;
  /** Writes the kept events in order, whole or not at all; false when the store still cannot take them. */
  flushEvents(): boolean;
  /** Events kept for later, and events dropped because too many were kept. */
  pending(): { events: number; dropped: number };
}

/** Pacing of control's background writes, and who hears when writes stop and start working. */
export interface WriteGuard {
  /** False while backing off after a refused write. */
  retryDue(): boolean;
  stats(): StorageStats;
  subscribe(fn: StorageListener): () => void;
}

/** Admin overrides in, published health out. */
export interface HealthRecord {
  /** Moves when health is saved or an override changes (another writer), and only grows. */
  version(): number;
  listOverrides(): readonly Override[];
  /**
   * Replaces the published health of every endpoint; returns the version now,
   * at least `atLeast`. The latency map and capacity published with it are
   * for engines that publish them beside health (the replicated one); SQLite
   * keeps health alone.
   */
  /** `dnssec`: the key RRsets as signed by this control, which a replicated store publishes for every replica (SQLite has no use for them). */
  saveHealth(health: ReadonlyMap<string, StoredHealth>, opts: { atLeast: number; latency?: LatencyMatrix; capacity?: Readonly<Record<string, RegionCapacity>>; resolved?: ResolvedMap; dnssec?: ZoneSigning }): number;
}

/** The bounded window of raw probe results `/v1/probes` shows. */
export interface ResultsWindow {
  /** Keeps results, each at `time(result)` (control's receipt time). */
  recordResults(agent: AgentInfo, results: readonly ProbeResult[], time: (r: ProbeResult) => number): void;
  /** Deletes results older than `before` (ms), and the oldest past `maxRows`; `overflow` is how many of those. */
  pruneResults(before: number, maxRows: number): { overflow: number };
}

/** Control's `store`: configuration, history, and the guard over every write control makes (both stores). */
export interface ControlStore extends ConfigReader, EventLog {
  readonly guard: WriteGuard;
}

/** Control's `healthStore`: overrides, published health and raw results. */
export interface ControlHealthStore extends HealthRecord, ResultsWindow {}
