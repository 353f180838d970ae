// Each agent's vote on an endpoint: its latest result and its streak of equal
// consecutive results, which the rise and fall thresholds are measured against.
// Resent duplicates are not counted twice; a gap or a clock step starts anew.
import type { AgentInfo, ProbeResult, Vote } from './types.js';

/** A vote as the tracker keeps it: `seenAt` (control's clock) decides freshness. */
export type StoredVote = Omit<Vote, 'fresh'> & { seenAt: number };

export function createStreaks(opts: { staleMs: number; replayWindowMs: number }) {
  const { staleMs, replayWindowMs } = opts;

  /** Counts `r` into the agent's vote, seen at `seenAt`; false when it was a resent duplicate. */
  return function record(votes: Map<string, StoredVote>, agent: AgentInfo, r: ProbeResult, seenAt: number): boolean {
    const prev = votes.get(agent.id);
    // A resent buffered batch repeats what was already counted: equal or slightly older times are skipped.
    if (prev && r.at <= prev.at && r.at > prev.at - replayWindowMs) return false;
    // A gap longer than the staleness window breaks a streak: those results were not consecutive checks
    // (nor are results from before and after the agent's clock went back).
    const continues = prev !== undefined && prev.ok === r.ok && r.at > prev.at && r.at - prev.at <= staleMs;
    votes.set(agent.id, {
      agent: agent.id, region: agent.region, ok: r.ok, streak: continues ? prev.streak + 1 : 1,
      rttMs: r.rttMs, error: r.ok ? undefined : r.error, at: r.at, seenAt,
    });
    return true;
  };
}
