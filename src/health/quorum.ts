// The quorum rule: an endpoint flips when a strict majority of the live agents
// hold a streak past `fall` (to down) or `rise` (to up); a majority whose
// streaks have only started marks a transition. Nothing flips before the
// tracker has settled, and silence is not evidence.
import { describeVotes } from './evidence.js';
import type { Fleet } from './fleet.js';
import type { StoredVote } from './streaks.js';
import type { EndpointHealth, HealthEvent } from './types.js';

/** One configured endpoint as the tracker keeps it. */
export type TrackedEndpoint = {
  state: 'up' | 'down';
  since: number;
  transition?: 'falling' | 'rising';
  votes: Map<string, StoredVote>;
  evidence: string;
  /** Evidence of the last evaluation that had fresh votes, quoted while holding. */
  lastEvidence?: string;
};

export type QuorumRule = { fall: number; rise: number; settleMs: number; start: number };

const regionOf = (key: string) => key.slice(0, key.indexOf('/'));

/** Applies the quorum rule to every endpoint; returns whether anything a snapshot shows changed. */
export function evaluateQuorum(endpoints: ReadonlyMap<string, TrackedEndpoint>, fleet: Fleet, rule: QuorumRule, events: HealthEvent[]): boolean {
  const { fall, rise } = rule;
  const clock = fleet.clock();
  let changed = false;
  // The electorate is every live agent, not just those that already voted on
  // an endpoint: otherwise the first agents to report (on a new endpoint, or
  // first within a round) would be the whole electorate for a moment.
  const electorate = fleet.electorate();
  const settled = clock - rule.start >= rule.settleMs;
  for (const [key, e] of endpoints) {
    const fresh = [...e.votes.values()].filter((v) => fleet.isFresh(v.seenAt));
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

/** The endpoint as readers see it: each vote marked fresh or not. */
export function viewEndpoint(e: TrackedEndpoint, fleet: Fleet): EndpointHealth {
  const votes = [...e.votes.values()].map(({ seenAt, ...v }) => ({ ...v, fresh: fleet.isFresh(seenAt) }));
  return { state: e.state, since: e.since, ...(e.transition ? { transition: e.transition } : {}), evidence: e.evidence, votes };
}
