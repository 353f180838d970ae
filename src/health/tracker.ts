// The health tracker: raw probe results in, endpoint health and events out.
// It composes the fleet (agents and staleness), admission (the agent limit),
// streaks (rise and fall) and the quorum rule, and owns the endpoint table.
import { createAdmission } from './admission.js';
import { createFleet } from './fleet.js';
import { evaluateQuorum, viewEndpoint, type TrackedEndpoint } from './quorum.js';
import { createStreaks } from './streaks.js';
import type { AgentInfo, EndpointHealth, HealthEvent, ProbeResult } from './types.js';

export type HealthTrackerOptions = {
  /** Consecutive failures an agent must see before its vote counts toward down. */
  fall?: number;
  /** Consecutive successes an agent must see before its vote counts toward up. */
  rise?: number;
  /** An agent (or a vote) older than this, in ms, no longer counts. */
  staleMs?: number;
  /** State of an endpoint before any result for it. */
  initial?: 'up' | 'down';
  /**
   * No flips for this long after tracker start (ms), so every live agent has
   * reported once and the first agent to reconnect after a control restart
   * cannot decide alone.
   */
  settleMs?: number;
  /**
   * Agents tracked at most: a new one past this replaces the agent silent the
   * longest, and is refused (`admits` is false) while every one is live. 256 unless set.
   */
  maxAgents?: number;
  /**
   * A result at or before an agent's latest, by at most this (ms), is a resent
   * duplicate and skipped; one much older means the agent's clock went back
   * (it restarted after a clock step) and starts a new streak. 60 s unless set.
   */
  replayWindowMs?: number;
  /** Tracker start (ms). */
  now: number;
};

export type AgentStatus = {
  id: string;
  region: string;
  /** Control's clock at the agent's latest report. */
  lastSeen: number;
  fresh: boolean;
  /** Results accepted from this agent (duplicates, old and unknown-endpoint results excluded). */
  results: number;
};

export interface HealthTracker {
  /** The configured endpoints: new ones start in the initial state, removed ones are forgotten. */
  setEndpoints(keys: readonly string[], now: number): void;
  /** Results from a refused agent (see `admits`) are ignored. */
  ingest(agent: AgentInfo, results: readonly ProbeResult[], now: number): HealthEvent[];
  /** False for a new agent while `maxAgents` are tracked and every one is live. */
  admits(agentId: string): boolean;
  /** Staleness: agents silent past `staleMs` lose their vote; all silent is "blind". */
  tick(now: number): HealthEvent[];
  endpoint(key: string): EndpointHealth | undefined;
  /** Whether the endpoint is configured (cheap: no view is built). */
  tracks(key: string): boolean;
  all(): ReadonlyMap<string, EndpointHealth>;
  agents(): AgentStatus[];
  /** Increases whenever an endpoint's state or transition, or the set of endpoints, changes. */
  generation(): number;
}

export const HEALTH_DEFAULTS = { fall: 2, rise: 4, staleMs: 3000, initial: 'up', settleMs: 1000, maxAgents: 256, replayWindowMs: 60_000 } as const;

// The options with their defaults, checked.
function settings(opts: HealthTrackerOptions) {
  const fall = positiveInt('fall', opts.fall ?? HEALTH_DEFAULTS.fall);
  const rise = positiveInt('rise', opts.rise ?? HEALTH_DEFAULTS.rise);
  const staleMs = opts.staleMs ?? HEALTH_DEFAULTS.staleMs;
  if (!(staleMs > 0)) throw new RangeError(`staleMs must be > 0, got ${staleMs}`);
  const initial = opts.initial ?? HEALTH_DEFAULTS.initial;
  const settleMs = opts.settleMs ?? HEALTH_DEFAULTS.settleMs;
  if (!(settleMs >= 0)) throw new RangeError(`settleMs must be >= 0, got ${settleMs}`);
  const maxAgents = positiveInt('maxAgents', opts.maxAgents ?? HEALTH_DEFAULTS.maxAgents);
  const replayWindowMs = opts.replayWindowMs ?? HEALTH_DEFAULTS.replayWindowMs;
  return { fall, rise, staleMs, initial, settleMs, maxAgents, replayWindowMs };
}

export function createHealthTracker(opts: HealthTrackerOptions): HealthTracker {
  const { fall, rise, staleMs, initial, settleMs, maxAgents, replayWindowMs } = settings(opts);
  const rule = { fall, rise, settleMs, start: opts.now };
  const endpoints = new Map<string, TrackedEndpoint>();
  const fleet = createFleet({ staleMs, now: opts.now });
  const admission = createAdmission({ fleet, endpoints, maxAgents });
  const record = createStreaks({ staleMs, replayWindowMs });
  let gen = 0;

  return {
    admits: (id) => admission.admits(id),

    setEndpoints(keys, now) {
      fleet.advance(now);
      const wanted = new Set(keys);
      let changed = false;
      for (const key of endpoints.keys()) {
        if (!wanted.has(key)) changed = endpoints.delete(key) || changed;
      }
      for (const key of wanted) {
        if (endpoints.has(key)) continue;
        endpoints.set(key, { state: initial, since: fleet.clock(), votes: new Map(), evidence: `no probe results yet: assumed ${initial}` });
        changed = true;
      }
      if (changed) gen++;
    },

    ingest(info, results, now) {
      fleet.advance(now);
      const events: HealthEvent[] = [];
      if (!admission.makeRoom(info.id, events)) return events;
      fleet.sweep(events, info.id);
      const agent = fleet.heard(info, events);
      // Oldest first, so an out-of-order batch is not half discarded as "older than newest".
      const ordered = [...results].sort((a, b) => a.at - b.at);
      for (const r of ordered) {
        const entry = endpoints.get(r.endpoint);
        if (entry && Number.isFinite(r.at) && record(entry.votes, info, r, fleet.clock())) agent.results++;
      }
      if (evaluateQuorum(endpoints, fleet, rule, events)) gen++;
      return events;
    },

    tick(now) {
      fleet.advance(now);
      const events: HealthEvent[] = [];
      fleet.sweep(events);
      fleet.watchBlind(events);
      if (evaluateQuorum(endpoints, fleet, rule, events)) gen++;
      return events;
    },

    tracks: (key) => endpoints.has(key),

    endpoint(key) {
      const e = endpoints.get(key);
      return e && viewEndpoint(e, fleet);
    },

    all() {
      return new Map([...endpoints].map(([key, e]) => [key, viewEndpoint(e, fleet)]));
    },

    agents() {
      return [...fleet.agents.values()].map((a) => ({ id: a.id, region: a.region, lastSeen: a.lastSeen, fresh: fleet.isFresh(a.lastSeen), results: a.results }));
    },

    generation: () => gen,
  };
}

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
  return value;
}
