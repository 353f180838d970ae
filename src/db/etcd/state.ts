// The leader's published state: what every replica builds the same snapshot
// from, beside the configuration. Written by the leader alone, fenced by its
// term; read by every replica from its read model.

/** One endpoint's effective health as the leader published it (the tracker with overrides on top). */
export type PublishedHealth = { state: 'up' | 'down'; reason: string; transition: boolean; since: number };

export type PublishedState = {
  /** The leader's term (the create revision of its leader key) when it wrote this. */
  term: string;
  /** Wall time of the write (ms). */
  at: number;
  health: Record<string, PublishedHealth>;
  /** Probe region → endpoint region → RTT (ms). */
  latency: Record<string, Record<string, number>>;
  /** Region → the share of clients it sheds, and why. */
  capacity: Record<string, { shed: number; saturation?: number; reason: string }>;
  /** Hostname endpoints' names as the leader resolved them (absent when none). */
  resolved?: Record<string, { addresses: readonly string[]; ttl: number } | { error: string }>;
};
