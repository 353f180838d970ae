// The limit on agents tracked (`maxAgents`): a new agent past it takes the
// place of the agent silent the longest, and is refused while every one is live.
import { secs, type Agent, type Fleet } from './fleet.js';
import type { TrackedEndpoint } from './quorum.js';
import type { HealthEvent } from './types.js';

export interface Admission {
  /** False for a new agent while `maxAgents` are tracked and every one is live. */
  admits(agentId: string): boolean;
  /** Makes room for `agentId` if it is new and the fleet is full; false when it must be refused. */
  makeRoom(agentId: string, events: HealthEvent[]): boolean;
}

export function createAdmission(deps: { fleet: Fleet; endpoints: ReadonlyMap<string, TrackedEndpoint>; maxAgents: number }): Admission {
  const { fleet, endpoints, maxAgents } = deps;
  const { agents } = fleet;

  /** The silent agent heard from longest ago, forgotten to make room; false when every agent is live. */
  function evictSilent(events: HealthEvent[]): boolean {
    let oldest: Agent | undefined;
    for (const a of agents.values()) if (!fleet.isFresh(a.lastSeen) && (!oldest || a.lastSeen < oldest.lastSeen)) oldest = a;
    if (!oldest) return false;
    fleet.forget(oldest.id);
    for (const e of endpoints.values()) e.votes.delete(oldest.id);
    const clock = fleet.clock();
    events.push({
      kind: 'agent.forgotten', subject: oldest.id, oldState: oldest.silent ? 'silent' : 'fresh', newState: 'forgotten', at: clock, region: oldest.region,
      reason: `forgotten after ${secs(clock - oldest.lastSeen)} without a report, to make room for another agent (at most ${maxAgents} tracked)`,
    });
    return true;
  }

  return {
    admits: (id) => agents.has(id) || agents.size < maxAgents || [...agents.values()].some((a) => !fleet.isFresh(a.lastSeen)),
    makeRoom: (id, events) => agents.has(id) || agents.size < maxAgents || evictSilent(events),
  };
}
