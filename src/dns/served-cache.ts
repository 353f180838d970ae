// The bound on every cache that lives as long as a snapshot.

/** Adds to one of the snapshot's caches. Bounded by dropping the oldest entry: a flood of distinct clients cannot grow memory. */
export function remember<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  if (map.size >= max) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
  map.set(key, value);
}
