// The client affinity hints (OpenAI `user`, `x-session-id`) the prefix
// strategy has placed, so that a conversation's first turn is told from its
// later ones: the first goes by consistent hash on the hint, as an oracle
// pinning conversations would place it, and the later ones follow their
// cache. A Map in insertion order, each hint moved to the back when seen:
// the least recently seen go first once `max` are held.
export type Sessions = {
  /** Whether `hint` was seen before (within the last `max` distinct ones); it is seen now. */
  seen(hint: string): boolean;
  size(): number;
};

export function createSessions(max: number): Sessions {
  const held = new Map<string, true>();
  return {
    seen(hint) {
      const was = held.delete(hint);
      held.set(hint, true);
      if (held.size > max) held.delete(held.keys().next().value!);
      return was;
    },
    size: () => held.size,
  };
}
