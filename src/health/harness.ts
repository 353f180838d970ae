import { createHealthTracker, type HealthTracker, type HealthTrackerOptions } from './tracker.js';
import type { AgentInfo, HealthEvent } from './types.js';

/** Test fleet: one probe agent per region, 500 ms rounds. */
export const AGENTS: AgentInfo[] = ['sg', 'jkt', 'bkk', 'mnl', 'sg2', 'jkt2', 'bkk2'].map((r) => ({ id: `probe-${r}`, region: r.replace(/\d$/, '') }));
export const EP = 'jkt/jkt-a/127.0.1.21';
export const INTERVAL = 500;
export const REFUSED = 'connect ECONNREFUSED 127.0.1.21:8000';

export type Fleet = {
  tracker: HealthTracker;
  agents: AgentInfo[];
  /** Control's clock: the time of the last round or tick. */
  t: number;
  events: HealthEvent[];
  /** One round: agent i reports `outcomes[i]` (true ok, false failure, null silent) for each endpoint. */
  round(outcomes: readonly (boolean | null)[], endpoints?: readonly string[]): HealthEvent[];
  tick(ms?: number): HealthEvent[];
  state(key?: string): 'up' | 'down' | undefined;
};

export function fleet(n: number, opts: Partial<HealthTrackerOptions> = {}, endpoints: readonly string[] = [EP]): Fleet {
  // No settling by default here: tests about settling ask for it.
  const tracker = createHealthTracker({ now: 0, settleMs: 0, ...opts });
  tracker.setEndpoints(endpoints, 0);
  const f: Fleet = {
    tracker,
    agents: AGENTS.slice(0, n),
    t: 0,
    events: [],
    round(outcomes, eps = endpoints) {
      f.t += INTERVAL;
      const out: HealthEvent[] = [];
      f.agents.forEach((agent, i) => {
        const ok = outcomes[i];
        if (ok === null || ok === undefined) return;
        const results = eps.map((endpoint) =>
          ok ? { endpoint, ok, rttMs: 1 + i / 10, at: f.t } : { endpoint, ok, error: REFUSED, at: f.t },
        );
        out.push(...tracker.ingest(agent, results, f.t));
      });
      out.push(...tracker.tick(f.t));
      f.events.push(...out);
      return out;
    },
    tick(ms = 0) {
      f.t += ms;
      const out = tracker.tick(f.t);
      f.events.push(...out);
      return out;
    },
    state: (key = EP) => tracker.endpoint(key)?.state,
  };
  return f;
}

export const all = (n: number, ok: boolean | null) => Array<boolean | null>(n).fill(ok);
export const kinds = (events: readonly HealthEvent[]) => events.map((e) => e.kind);
