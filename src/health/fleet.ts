// The probe agents the tracker has heard from, and time as it counts it: an
// agent (or a vote) not heard from within `staleMs` no longer counts, and when
// every agent has gone silent the fleet is blind and endpoints hold their state.
import type { AgentInfo, HealthEvent } from './types.js';

export type Agent = { id: string; region: string; lastSeen: number; silent: boolean; results: number };

export const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The agents and the tracker's clock, which every freshness check reads. */
export interface Fleet {
  readonly agents: ReadonlyMap<string, Agent>;
  /** The latest time the tracker was given. */
  clock(): number;
  advance(now: number): void;
  /** Seen within the staleness window of the clock. */
  isFresh(seenAt: number): boolean;
  /** The agent reporting now, added or brought back; joined, returned and sighted events as they happen. */
  heard(info: AgentInfo, events: HealthEvent[]): Agent;
  /** Silences agents past the window (other than `except`, which is reporting right now). */
  sweep(events: HealthEvent[], except?: string): void;
  /** After a sweep: when every agent is silent, the fleet goes blind (once). */
  watchBlind(events: HealthEvent[]): void;
  /** Live agents: every one of them is a voter on every endpoint. */
  electorate(): number;
  forget(id: string): void;
}

export function createFleet(opts: { staleMs: number; now: number }): Fleet {
  const { staleMs } = opts;
  const agents = new Map<string, Agent>();
  let clock = opts.now;
  let blind = false;
  let blindSince = 0;

  const isFresh = (seenAt: number) => clock - seenAt <= staleMs;

  return {
    agents,
    clock: () => clock,
    // Time only moves forward: a late caller cannot make fresh votes stale or stale ones fresh.
    advance(now) {
      clock = Math.max(clock, now);
    },
    isFresh,

    heard(info, events) {
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
      return agent;
    },

    sweep(events, except) {
      for (const a of agents.values()) {
        if (a.silent || a.id === except || isFresh(a.lastSeen)) continue;
        a.silent = true;
        events.push({
          kind: 'agent.silent', subject: a.id, oldState: 'fresh', newState: 'silent', at: clock, region: a.region,
          reason: `no report for ${secs(clock - a.lastSeen)} (stale after ${secs(staleMs)}): its votes no longer count`,
        });
      }
    },

    watchBlind(events) {
      if (!blind && agents.size > 0 && [...agents.values()].every((a) => a.silent)) {
        blind = true;
        blindSince = clock;
        events.push({
          kind: 'fleet.blind', subject: 'fleet', oldState: 'sighted', newState: 'blind', at: clock,
          reason: `all ${agents.size} probe agents silent: holding the last known state of every endpoint`,
        });
      }
    },

    electorate: () => [...agents.values()].filter((a) => isFresh(a.lastSeen)).length,

    forget(id) {
      agents.delete(id);
    },
  };
}
