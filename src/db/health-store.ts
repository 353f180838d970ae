import { eq } from 'drizzle-orm';
import type { Db } from './database.js';
import { metaCounter } from './counter.js';
import { guardOf } from './faults.js';
import { createProbeResults } from './probe-results.js';
import * as schema from './schema.js';

export type StoredHealth = { state: 'up' | 'down'; reason: string; transition: boolean; since: number };
export type Override = { subject: string; mode: 'drain' | 'force-up'; reason: string; actor: string | null; time: number };

const HEALTH_VERSION = 'health_version';
const RESOLVED = 'hostnames_resolved';

/** A hostname endpoint's name as control resolved it (snapshot.ts's HostnameResolution). */
export type StoredResolution = { addresses: readonly string[]; ttl: number } | { error: string };

/**
 * Health as control publishes it, admin overrides, and (from probe-results.ts)
 * the bounded window of raw probe results. `version()` moves whenever
 * published health or an override changes, so readers of the database know
 * to rebuild.
 */
export function createHealthStore(db: Db, opts: { now?: () => number } = {}) {
  const now = opts.now ?? Date.now;
  const { healthState, overrides, meta } = schema;
  const guard = guardOf(db);

  const { get: version, bump } = metaCounter(db, HEALTH_VERSION);

  return {
    version,

    /** Replaces the published health of every endpoint; the version becomes one more, or `atLeast` (what control already published). */
    saveHealth(health: ReadonlyMap<string, StoredHealth>, o: { atLeast?: number; resolved?: Readonly<Record<string, StoredResolution>> } = {}): number {
      return guard.write(() =>
        db.transaction(() => {
          const value = JSON.stringify(o.resolved ?? {});
          db.insert(meta).values({ key: RESOLVED, value }).onConflictDoUpdate({ target: meta.key, set: { value } }).run();
          db.delete(healthState).run();
          for (const [endpoint, h] of health)
            db.insert(healthState).values({ endpoint, state: h.state, reason: h.reason, transition: h.transition, since: h.since }).run();
          return bump(o.atLeast);
        }),
      );
    },

    loadHealth(): Map<string, StoredHealth> {
      return new Map(
        db
          .select()
          .from(healthState)
          .all()
          .map((r) => [r.endpoint, { state: r.state, reason: r.reason, transition: r.transition, since: r.since }]),
      );
    },

    /** Hostname endpoints' resolutions as last published (flattened answers of DNS nodes reading this file). */
    loadResolved(): Record<string, StoredResolution> {
      const row = db.select().from(meta).where(eq(meta.key, RESOLVED)).get();
      try {
        return row ? (JSON.parse(row.value) as Record<string, StoredResolution>) : {};
      } catch {
        return {};
      }
    },

    listOverrides(): Override[] {
      return db.select().from(overrides).orderBy(overrides.subject).all();
    },

    /** Sets (or replaces) an override; returns the previous one. */
    setOverride(o: Omit<Override, 'time' | 'actor'> & { actor?: string }): Override | undefined {
      return guard.write(() => db.transaction(() => {
        const before = db.select().from(overrides).where(eq(overrides.subject, o.subject)).get();
        const row = { subject: o.subject, mode: o.mode, reason: o.reason, actor: o.actor ?? null, time: now() };
        db.insert(overrides).values(row).onConflictDoUpdate({ target: overrides.subject, set: row }).run();
        bump();
        return before;
      }));
    },

    /** Removes an override; returns it, or undefined when there was none. */
    clearOverride(subject: string): Override | undefined {
      return guard.write(() => db.transaction(() => {
        const before = db.select().from(overrides).where(eq(overrides.subject, subject)).get();
        if (!before) return undefined;
        db.delete(overrides).where(eq(overrides.subject, subject)).run();
        bump();
        return before;
      }));
    },

    ...createProbeResults(db),
  };
}

export type HealthStore = ReturnType<typeof createHealthStore>;
