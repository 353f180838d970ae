import { and, desc, eq, lt, type SQL } from 'drizzle-orm';
import type { Db } from './database.js';
import { metaCounter } from './counter.js';
import { guardOf } from './faults.js';
import * as schema from './schema.js';

export type StoredHealth = { state: 'up' | 'down'; reason: string; transition: boolean; since: number };
export type Override = { subject: string; mode: 'drain' | 'force-up'; reason: string; actor: string | null; time: number };
export type RawResult = { endpoint: string; ok: boolean; rttMs?: number; error?: string; at: number };

const HEALTH_VERSION = 'health_version';

/**
 * Health as control publishes it, admin overrides, and the bounded window of
 * raw probe results. `version()` moves whenever published health or an
 * override changes, so readers of the database know to rebuild.
 */
export function createHealthStore(db: Db, opts: { now?: () => number } = {}) {
  const now = opts.now ?? Date.now;
  const { healthState, overrides, probeResults } = schema;
  const guard = guardOf(db);

  const { get: version, bump } = metaCounter(db, HEALTH_VERSION);

  const insertResult = db.$client.prepare(
    'INSERT INTO probe_results (time, agent, agent_region, endpoint, ok, rtt_us, error) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );

  return {
    version,

    /** Replaces the published health of every endpoint; the version becomes one more, or `atLeast` (what control already published). */
    saveHealth(health: ReadonlyMap<string, StoredHealth>, o: { atLeast?: number } = {}): number {
      return guard.write(() =>
        db.transaction(() => {
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

    /** Keeps raw results, each at its `at` unless `time` (control's receipt time) is given. */
    recordResults(agent: { id: string; region: string }, results: readonly RawResult[], time?: (r: RawResult) => number): void {
      guard.write(() =>
        db.$client.transaction(() => {
          for (const r of results)
            insertResult.run(time ? time(r) : r.at, agent.id, agent.region, r.endpoint, r.ok ? 1 : 0, r.rttMs === undefined ? null : Math.round(r.rttMs * 1000), r.error ?? null);
        })(),
      );
    },

    /** Deletes raw results older than `before` (ms), and the oldest past `maxRows`; returns how many of each. */
    pruneResults(before: number, maxRows = Infinity): { expired: number; overflow: number } {
      return guard.write(() =>
        db.transaction(() => {
          const expired = db.delete(probeResults).where(lt(probeResults.time, before)).run().changes;
          let overflow = 0;
          if (Number.isFinite(maxRows)) {
            const newest = (db.$client.prepare('SELECT max(id) AS id, count(*) AS n FROM probe_results').get() as { id: number | null; n: number });
            if (newest.id !== null && newest.n > maxRows)
              overflow = db.$client.prepare('DELETE FROM probe_results WHERE id <= ?').run(newest.id - maxRows).changes;
          }
          return { expired, overflow };
        }),
      );
    },

    recentResults(q: { endpoint?: string; agent?: string; limit?: number } = {}) {
      const where: SQL[] = [];
      if (q.endpoint) where.push(eq(probeResults.endpoint, q.endpoint));
      if (q.agent) where.push(eq(probeResults.agent, q.agent));
      return db
        .select()
        .from(probeResults)
        .where(and(...where))
        .orderBy(desc(probeResults.id))
        .limit(Math.min(q.limit ?? 100, 1000))
        .all()
        .map((r) => ({ ...r, rttMs: r.rttUs === null ? undefined : r.rttUs / 1000 }));
    },
  };
}

export type HealthStore = ReturnType<typeof createHealthStore>;
