import { describeVotes } from './evidence.js';
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

type State = 'up' | 'down';
type StoredVote = { agent: string; region: string; ok: boolean; streak: number; rttMs?: number; error?: string; at: number; seenAt: number };
type Entry = {
  state: State;
  since: number;
  transition?: 'falling' | 'rising';
  votes: Map<string, StoredVote>;
  evidence: string;
  /** Evidence of the last evaluation that had fresh votes, quoted while holding. */
  lastEvidence?: string;
};
type Agent = { id: string; region: string; lastSeen: number; silent: boolean; results: number };

export function createHealthTracker(opts: HealthTrackerOptions): HealthTracker {
  const fall = positiveInt('fall', opts.fall ?? HEALTH_DEFAULTS.fall);
  const rise = positiveInt('rise', opts.rise ?? HEALTH_DEFAULTS.rise);
  const staleMs = opts.staleMs ?? HEALTH_DEFAULTS.staleMs;
  if (!(staleMs > 0)) throw new RangeError(`staleMs must be > 0, got ${staleMs}`);
  const initial = opts.initial ?? HEALTH_DEFAULTS.initial;
  const settleMs = opts.settleMs ?? HEALTH_DEFAULTS.settleMs;
  if (!(settleMs >= 0)) throw new RangeError(`settleMs must be >= 0, got ${settleMs}`);
  const start = opts.now;
  const maxAgents = positiveInt('maxAgents', opts.maxAgents ?? HEALTH_DEFAULTS.maxAgents);
  const replayWindowMs = opts.replayWindowMs ?? HEALTH_DEFAULTS.replayWindowMs;

  const endpoints = new Map<string, Entry>();
  const agents = new Map<string, Agent>();
  let clock = opts.now;
  let gen = 0;
  let blind = false;
  let blindSince = 0;

  // Time only moves forward: a late caller cannot make fresh votes stale or stale ones fresh.
  const advance = (now: number) => (clock = Math.max(clock, now));
  const isFresh = (seenAt: number) => clock - seenAt <= staleMs;
  const regionOf = (key: string) => key.slice(0, key.indexOf('/'));
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

  /** Silences agents past the window (other than `except`, which is reporting right now). */
  function sweep(events: HealthEvent[], except?: string): void {
    for (const a of agents.values()) {
      if (a.silent || a.id === except || isFresh(a.lastSeen)) continue;
      a.silent = true;
      events.push({
        kind: 'agent.silent', subject: a.id, oldState: 'fresh', newState: 'silent', at: clock, region: a.region,
        reason: `no report for ${secs(clock - a.lastSeen)} (stale after ${secs(staleMs)}): its votes no longer count`,
      });
    }
  }

  /** Applies the quorum rule to every endpoint; returns whether anything a snapshot shows changed. */
  function evaluate(events: HealthEvent[]): boolean {
    let changed = false;
    // The electorate is every live agent, not just those that already voted on
    // an endpoint: otherwise the first agents to report (on a new endpoint, or
    // first within a round) would be the whole electorate for a moment.
    const electorate = [...agents.values()].filter((a) => isFresh(a.lastSeen)).length;
    const settled = clock - start >= settleMs;
    for (const [key, e] of endpoints) {
      const fresh = [...e.votes.values()].filter((v) => isFresh(v.seenAt));
      if (fresh.length === 0) {
        // Silence is not evidence: hold state and transition as they were.
        e.evidence = e.votes.size === 0
          ? `no probe results yet: assumed ${e.state}`
          : `holding ${e.state}: no fresh probe results (last: ${e.lastEvidence ?? 'none'})`;
        continue;
      }
      const n = Math.max(electorate, fresh.length);
      const majority = (count: number) => 2 * count > n;
      const failing = fresh.filter((v) => !v.ok);
      const passing = fresh.filter((v) => v.ok);
      const old = e.state;
      // Before settling, the electorate is not known yet: hold.
      if (settled && old === 'up' && majority(failing.filter((v) => v.streak >= fall).length)) e.state = 'down';
      else if (settled && old === 'down' && majority(passing.filter((v) => v.streak >= rise).length)) e.state = 'up';
      const transition = e.state === 'up' && majority(failing.length) ? 'falling'
        : e.state === 'down' && majority(passing.length) ? 'rising'
        : undefined;
      e.evidence = e.lastEvidence = describeVotes(e.state, fresh, n);
      if (transition !== e.transition) {
        e.transition = transition;
        changed = true;
      }
      if (e.state !== old) {
        e.since = clock;
        changed = true;
        events.push({
          kind: e.state === 'down' ? 'endpoint.down' : 'endpoint.up',
          subject: key, oldState: old, newState: e.state, reason: e.evidence, at: clock, region: regionOf(key),
        });
      }
    }
    return changed;
  }

  function record(entry: Entry, agent: AgentInfo, r: ProbeResult): boolean {
    const prev = entry.votes.get(agent.id);
    // A resent buffered batch repeats what was already counted: equal or slightly older times are skipped.
    if (prev && r.at <= prev.at && r.at > prev.at - replayWindowMs) return false;
    // A gap longer than the staleness window breaks a streak: those results were not consecutive checks
    // (nor are results from before and after the agent's clock went back).
    const continues = prev !== undefined && prev.ok === r.ok && r.at > prev.at && r.at - prev.at <= staleMs;
    entry.votes.set(agent.id, {
      agent: agent.id, region: agent.region, ok: r.ok, streak: continues ? prev.streak + 1 : 1,
      rttMs: r.rttMs, error: r.ok ? undefined : r.error, at: r.at, seenAt: clock,
    });
    return true;
  }

  function view(e: Entry): EndpointHealth {
    const votes = [...e.votes.values()].map(({ seenAt, ...v }) => ({ ...v, fresh: isFresh(seenAt) }));
    return { state: e.state, since: e.since, ...(e.transition ? { transition: e.transition } : {}), evidence: e.evidence, votes };
  }

  /** The silent agent heard from longest ago, forgotten to make room; false when every agent is live. */
  function evictSilent(events: HealthEvent[]): boolean {
    let oldest: Agent | undefined;
    for (const a of agents.values()) if (!isFresh(a.lastSeen) && (!oldest || a.lastSeen < oldest.lastSeen)) oldest = a;
    if (!oldest) return false;
    agents.delete(oldest.id);
    for (const e of endpoints.values()) e.votes.delete(oldest.id);
    events.push({
      kind: 'agent.forgotten', subject: oldest.id, oldState: oldest.silent ? 'silent' : 'fresh', newState: 'forgotten', at: clock, region: oldest.region,
      reason: `forgotten after ${secs(clock - oldest.lastSeen)} without a report, to make room for another agent (at most ${maxAgents} tracked)`,
    });
    return true;
  }

  const admits = (id: string) => agents.has(id) || agents.size < maxAgents || [...agents.values()].some((a) => !isFresh(a.lastSeen));

  return {
    admits,

    setEndpoints(keys, now) {
      advance(now);
      const wanted = new Set(keys);
      let changed = false;
      for (const key of endpoints.keys()) {
        if (!wanted.has(key)) changed = endpoints.delete(key) || changed;
      }
      for (const key of wanted) {
        if (endpoints.has(key)) continue;
        endpoints.set(key, { state: initial, since: clock, votes: new Map(), evidence: `no probe results yet: assumed ${initial}` });
        changed = true;
      }
      if (changed) gen++;
    },

    ingest(info, results, now) {
      advance(now);
      const events: HealthEvent[] = [];
      if (!agents.has(info.id) && agents.size >= maxAgents && !evictSilent(events)) return events;
      sweep(events, info.id);
      let agent = agents.get(info.id);
      if (!agent) {
        agent = { id: info.id, region: info.region, lastSeen: clock, silent: false, results: 0 };
        agents.set(info.id, agent);
        events.push({
          kind: 'agent.joined', subject: info.id, oldState: 'unknown', newState: 'fresh', at: clock, region: info.region,
          reason: `first report from probe agent ${info.id} in region ${info.region}`,
        });
      } else if (agent.silent) {
        events.push({
          kind: 'agent.returned', subject: info.id, oldState: 'silent', newState: 'fresh', at: clock, region: info.region,
          reason: `reported again after ${secs(clock - agent.lastSeen)} silent`,
        });
      }
      Object.assign(agent, { region: info.region, lastSeen: clock, silent: false });
      if (blind) {
        blind = false;
        events.push({
          kind: 'fleet.sighted', subject: 'fleet', oldState: 'blind', newState: 'sighted', at: clock,
          reason: `probe agent ${info.id} (${info.region}) reported after ${secs(clock - blindSince)} blind`,
        });
      }
      // Oldest first, so an out-of-order batch is not half discarded as "older than newest".
      const ordered = [...results].sort((a, b) => a.at - b.at);
      for (const r of ordered) {
        const entry = endpoints.get(r.endpoint);
        if (entry && Number.isFinite(r.at) && record(entry, info, r)) agent.results++;
      }
      if (evaluate(events)) gen++;
      return events;
    },

    tick(now) {
      advance(now);
      const events: HealthEvent[] = [];
      sweep(events);
      if (!blind && agents.size > 0 && [...agents.values()].every((a) => a.silent)) {
        blind = true;
        blindSince = clock;
        events.push({
          kind: 'fleet.blind', subject: 'fleet', oldState: 'sighted', newState: 'blind', at: clock,
          reason: `all ${agents.size} probe agents silent: holding the last known state of every endpoint`,
        });
      }
      if (evaluate(events)) gen++;
      return events;
    },

    tracks: (key) => endpoints.has(key),

    endpoint(key) {
      const e = endpoints.get(key);
      return e && view(e);
    },

    all() {
      return new Map([...endpoints].map(([key, e]) => [key, view(e)]));
    },

    agents() {
      return [...agents.values()].map((a) => ({ id: a.id, region: a.region, lastSeen: a.lastSeen, fresh: isFresh(a.lastSeen), results: a.results }));
    },

    generation: () => gen,
  };
}

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
  return value;
}
