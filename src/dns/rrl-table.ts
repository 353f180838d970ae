// RRL's table of token buckets, bounded so that a flood of spoofed sources
// cannot grow memory: when it is full, buckets idle for a second (full again:
// forgetting them changes nothing) are swept, at most once a second since it
// is a full pass, then the oldest go.

export type Bucket = { tokens: number; last: number; slip: number };

/** A bucket untouched this long is full again: forgetting it changes nothing. */
const IDLE_MS = 1000;

export interface BucketTable {
  /** Buckets of IPv4 networks, by network × kinds + kind. */
  readonly v4: Map<number, Bucket>;
  /** Buckets of IPv6 networks, by network key + kind (latin1). */
  readonly v6: Map<string, Bucket>;
  /** Makes room for one more bucket under `max` at `now` (ms). */
  readonly makeRoom: (now: number, max: number) => void;
  clear(): void;
}

export function createBucketTable(stats: { evicted: number }): BucketTable {
  const v4 = new Map<number, Bucket>();
  const v6 = new Map<string, Bucket>();
  let lastSweep = -Infinity;

  // Room for one more bucket: first forget idle ones (at most once a second, it is a full pass), then the oldest.
  function makeRoom(now: number, max: number): void {
    if (now - lastSweep >= IDLE_MS) {
      lastSweep = now;
      for (const [k, b] of v4) if (now - b.last >= IDLE_MS) v4.delete(k);
      for (const [k, b] of v6) if (now - b.last >= IDLE_MS) v6.delete(k);
    }
    while (v4.size + v6.size >= max && v4.size + v6.size > 0) {
      stats.evicted++;
      const map: Map<number | string, Bucket> = v4.size >= v6.size ? v4 : v6;
      map.delete(map.keys().next().value!);
    }
  }

  return {
    v4,
    v6,
    makeRoom,
    clear() {
      v4.clear();
      v6.clear();
    },
  };
}
