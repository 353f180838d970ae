// Which prompt prefixes this balancer sent to which instance: an approximate
// image of each instance's KV cache (the prefix strategy's memory,
// pickers/prefix.ts). Per instance, a Map from block name (the chained hashes
// of src/prompt/blocks.ts) to when it was last refreshed, in insertion order:
// the first entries are the least recently used, and go first when the
// instance's share of the memory cap is full (vLLM's cache evicts least
// recently used too). A request's blocks are recorded suffix first, so its
// prefix is the newest and outlives its suffix, as vLLM frees a request's
// blocks tail first. An existing entry is moved to the back only once it has
// aged past a quarter of the capacity: a hot system prompt costs lookups, not
// re-insertions, on every request.
//
// Lookups assume what the recording makes true: an instance holding block k
// of a prompt holds blocks 0..k-1 too. The longest cached prefix is then
// found by binary search, about log2(blocks) lookups per instance.
//
// Memory: an entry (a small-integer key and value in a V8 Map) measured 29
// bytes here; the cap counts 64 for the Map's growth headroom. The index
// never holds more than `maxBytes / 64` entries, whatever the prompts.
export const ENTRY_BYTES = 64;
export const DEFAULT_INDEX_BYTES = 64 * 2 ** 20;

export type PrefixIndex = {
  /** Leading blocks of `hashes` the index believes `id` holds. */
  matched(id: string, hashes: readonly number[]): number;
  /** `hashes` were sent to `id`: it holds them now. `known`: its leading blocks `matched` found held a moment ago. */
  record(id: string, hashes: readonly number[], known?: number): void;
  /** The instance left, restarted or lost its cache: nothing of it is known any more. */
  forget(id: string): void;
  /** Instances the index keeps (to size each one's share of the cap). */
  setInstances(ids: readonly string[]): void;
  /** The instance's cache holds at most `blocks`: the index keeps no more of it (what is older has been evicted there). */
  setLimit(id: string, blocks: number): void;
  /** Blocks the index believes `id` can still take before it evicts (its limit, or its share of the cap, less what it holds). */
  room(id: string): number;
  entries(): number;
  /** The most entries it may hold. */
  capacity(): number;
};

export function createPrefixIndex(opts: { maxBytes?: number } = {}): PrefixIndex {
  const maxEntries = Math.max(1, Math.floor((opts.maxBytes ?? DEFAULT_INDEX_BYTES) / ENTRY_BYTES));
  const maps = new Map<string, { blocks: Map<number, number>; seq: number; limit?: number }>();
  let share = maxEntries;
  let total = 0;

  const of = (id: string) => {
    let m = maps.get(id);
    if (!m) maps.set(id, (m = { blocks: new Map(), seq: 0 }));
    return m;
  };
  const resize = (count: number) => {
    share = Math.max(1, Math.floor(maxEntries / Math.max(1, count)));
    for (const m of maps.values()) evict(m);
  };
  const capOf = (m: { limit?: number }) => Math.min(share, m.limit ?? share);
  function evict(m: { blocks: Map<number, number>; limit?: number }) {
    const cap = capOf(m);
    if (m.blocks.size <= cap) return;
    for (const k of m.blocks.keys()) {
      m.blocks.delete(k);
      total--;
      if (m.blocks.size <= cap) break;
    }
  }

  return {
    matched(id, hashes) {
      const m = maps.get(id)?.blocks;
      if (!m || hashes.length === 0 || !m.has(hashes[0])) return 0;
      let lo = 1;
      let hi = hashes.length;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (m.has(hashes[mid - 1])) lo = mid;
        else hi = mid - 1;
      }
      return lo;
    },
    record(id, hashes, known = 0) {
      const m = of(id);
      if (maps.size > 0 && share > Math.floor(maxEntries / maps.size)) resize(maps.size);
      const cap = capOf(m);
      const stale = Math.max(1, cap >> 2);
      // At most the instance's share: the rest would be evicted by the same call.
      const n = Math.min(hashes.length, cap);
      // A held prefix is refreshed as a whole when its oldest block (its last: recorded first) has aged; else left in place.
      const held = Math.min(known, n);
      const oldest = held > 0 ? m.blocks.get(hashes[held - 1]) : undefined;
      const from = oldest !== undefined && m.seq - oldest < stale ? held : 0;
      for (let i = n - 1; i >= from; i--) {
        const h = hashes[i];
        const at = m.blocks.get(h);
        if (at !== undefined) {
          if (m.seq - at < stale) continue;
          m.blocks.delete(h);
          total--;
        }
        m.blocks.set(h, m.seq++);
        total++;
      }
      evict(m);
    },
    forget(id) {
      const m = maps.get(id);
      if (!m) return;
      total -= m.blocks.size;
      maps.delete(id);
    },
    setInstances(ids) {
      const keep = new Set(ids);
      for (const id of [...maps.keys()]) if (!keep.has(id)) this.forget(id);
      resize(ids.length);
    },
    setLimit(id, blocks) {
      const m = of(id);
      if (m.limit === blocks) return;
      m.limit = Math.max(1, blocks);
      evict(m);
    },
    room(id) {
      const m = maps.get(id);
      return m ? Math.max(0, capOf(m) - m.blocks.size) : share;
    },
    entries: () => total,
    capacity: () => maxEntries,
  };
}
