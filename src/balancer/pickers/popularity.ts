// How much of the recent traffic shares a prefix: the share of the last
// `window` requests whose longest cached prefix ended in the same block. The
// prefix picker's load guard asks it whether a prefix is hot: one that more
// than one instance's share of the traffic asks for cannot stay on one
// instance without its queue running away, so it must be spread (a second
// copy serves its other clients); one that fits on one instance is better
// left where it is cached through a passing imbalance, since a copy there
// evicts another prefix that will be missed in its turn (bench:prefix's RAG,
// 32 documents in caches that hold 40, lost its p99 to such copies).
//
// A ring of the last `window` keys and a count per key: O(1) a request, and
// at most `window` keys held.

export type Popularity = {
  /** Counts one request whose prefix ended at block `key` (undefined: nothing cached anywhere). */
  add(key: number | undefined): void;
  /** The share (0–1) of the requests in the window that `key` had. */
  share(key: number): number;
};

export function createPopularity(window = 512): Popularity {
  const ring: (number | undefined)[] = new Array<number | undefined>(window);
  const counts = new Map<number, number>();
  let next = 0;
  let seen = 0;
  return {
    add(key) {
      const old = ring[next];
      if (seen >= window && old !== undefined) {
        const c = counts.get(old)! - 1;
        if (c === 0) counts.delete(old);
        else counts.set(old, c);
      }
      ring[next] = key;
      next = (next + 1) % window;
      seen++;
      if (key !== undefined) counts.set(key, (counts.get(key) ?? 0) + 1);
    },
    share(key) {
      return seen === 0 ? 0 : (counts.get(key) ?? 0) / Math.min(seen, window);
    },
  };
}
