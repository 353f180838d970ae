/** One raw check from a probe agent. Endpoint key: `${region}/${zone}/${address}`. */
export type ProbeResult = { endpoint: string; ok: boolean; rttMs?: number; error?: string; at: number };

export type AgentInfo = { id: string; region: string };

/** One agent's standing on one endpoint, as the tracker counts it. */
export type Vote = {
  agent: string;
  region: string;
  /** The latest accepted result. */
  ok: boolean;
  /** Consecutive results equal to `ok`, this one included. */
  streak: number;
  rttMs?: number;
  error?: string;
  /** The latest accepted result's time (the agent's clock). */
  at: number;
  /** Reported within the staleness window: only fresh votes count toward a quorum. */
  fresh: boolean;
};

export type EndpointHealth = {
  state: 'up' | 'down';
  /** When the state last changed (or when the endpoint was first configured). */
  since: number;
  /** Moving toward the other state (a majority's streaks started) but not yet flipped: steering shrinks the TTL. */
  transition?: 'falling' | 'rising';
  /** Human-readable evidence, e.g. "3 of 4 agents: connect ECONNREFUSED 127.0.1.21:8000". */
  evidence: string;
  votes: Vote[];
};

export type HealthEvent = {
  kind: 'endpoint.down' | 'endpoint.up' | 'agent.joined' | 'agent.silent' | 'agent.returned' | 'agent.forgotten' | 'fleet.blind' | 'fleet.sighted';
  /** Endpoint key, agent id, or `fleet`. */
  subject: string;
  oldState: string;
  newState: string;
  /** Carries the evidence. */
  reason: string;
  at: number;
  region?: string;
};
