// The bounded window of raw probe results, as agents reported them: kept for
// the API's "recent" view and pruned by age and count. Health's version does
// not move with them; nothing is derived from this table but what is shown.
import { and, desc, eq, lt, type SQL } from 'drizzle-orm';
import type { Db } from './database.js';
import { guardOf } from './faults.js';
import * as schema from './schema.js';

export type RawResult = { endpoint: string; ok: boolean; rttMs?: number; error?: string; at: number };

/** The raw results over `db`'s `probe_results` table. */
export function createProbeResults(db: Db) {
  const { probeResults } = schema;
  const guard = guardOf(db);

  const insertResult = db.$client.prepare(
    'INSERT INTO probe_results (time, agent, agent_region, endpoint, ok, rtt_us, error) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );

  return {
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
