import { BLOCK_TOKENS, cachedTokensOf } from '../prompt/blocks.js';

// A simulated instance's KV cache as vLLM's automatic prefix caching keeps it:
// a pool of fixed-size blocks (16 tokens, src/prompt/blocks.ts). A prompt's
// full blocks are named by their chained hashes, so a later prompt that starts
// the same way finds them; the partial last block and the decoded tokens are
// the sequence's own. A running sequence holds its blocks (reference-counted,
// shared when cached); a block nobody holds stays cached in a free queue and
// is evicted, least recently freed first, only when a new block needs room.
// A request frees its blocks tail first, as vLLM's free-block queue does, so
// that a prefix outlives its suffix.

/** What a sequence asks of the cache: its prompt (tokens and full-block hashes) and the tokens it will decode. */
export type BlockRequest = { promptTokens: number; hashes: readonly number[]; decodeTokens: number };

/** A sequence's blocks while it runs: the prompt tokens found cached, and how to give the blocks back. */
export type Allocation = { cachedTokens: number; release(): void };

export interface PrefixCache {
  /** The pool size in blocks (Infinity: unlimited). */
  readonly capacity: number;
  /** Blocks held by running sequences (cached blocks nobody holds are free: evictable). */
  used(): number;
  /** Cached blocks, held or free. */
  cached(): number;
  /** How many leading blocks of `hashes` are cached (a look, no use: nothing moves in the eviction order). */
  matched(hashes: readonly number[]): number;
  /** Blocks a request needs in all; one needing more than `capacity` can never run. */
  blocksFor(r: BlockRequest): number;
  /** Whether `r` can be admitted now: the blocks it newly needs (cached ones are shared) fit in what is free. */
  fits(r: BlockRequest): boolean;
  /** Admits `r` (call only when it fits): holds its blocks, evicting free cached ones as new ones need room. */
  take(r: BlockRequest): Allocation;
  /** A restart: nothing is cached any more. Sequences still holding blocks keep them counted until they release. */
  clear(): void;
}

export { cachedTokensOf };

type Held = { epoch: number; hashes: readonly number[]; own: number };

export function createPrefixCache(opts: { capacityBlocks: number; enabled: boolean }): PrefixCache {
  const capacity = opts.capacityBlocks;
  /** Every cached block by hash, with the sequences holding it. */
  const blocks = new Map<number, number>();
  /** Cached blocks nobody holds, in eviction order (a Set keeps insertion order): least recently freed first. */
  const free = new Set<number>();
  /** Blocks held that are no cached block: partial last blocks, decode space, and a restart's leftovers. */
  let own = 0;
  let epoch = 0;
  const live = new Set<Held>();

  const used = () => blocks.size - free.size + own;
  const hashesOf = (r: BlockRequest) => (opts.enabled ? r.hashes : []);
  function matched(hashes: readonly number[]): number {
    let hit = 0;
    while (hit < hashes.length && blocks.has(hashes[hit])) hit++;
    return hit;
  }
  const blocksFor = (r: BlockRequest) => Math.ceil((r.promptTokens + r.decodeTokens) / BLOCK_TOKENS);

  /** Blocks leaving the free pool if `r` were admitted: new ones, and cached ones nobody holds yet. */
  function cost(r: BlockRequest): number {
    const hashes = hashesOf(r);
    let n = Math.max(0, blocksFor(r) - hashes.length);
    for (const h of hashes) if ((blocks.get(h) ?? 0) === 0) n++;
    return n;
  }

  /** Evicts free cached blocks, least recently freed first, until `n` blocks are empty. */
  function makeRoom(n: number): void {
    while (blocks.size + own + n > capacity) {
      const victim = free.values().next();
      if (victim.done) throw new Error('prefix cache: no block to evict (admitted past capacity)');
      free.delete(victim.value);
      blocks.delete(victim.value);
    }
  }

  return {
    capacity,
    used,
    cached: () => blocks.size,
    matched: (hashes) => (opts.enabled ? matched(hashes) : 0),
    blocksFor,
    fits: (r) => blocksFor(r) <= capacity && cost(r) <= capacity - used(),
    take(r) {
      const hashes = hashesOf(r);
      const cachedTokens = cachedTokensOf(matched(hashes), r.promptTokens);
      // Hold the cached blocks first, so that making room for the new ones never evicts them.
      const missing: number[] = [];
      for (const h of hashes) {
        const refs = blocks.get(h);
        if (refs === undefined) missing.push(h);
        else {
          free.delete(h);
          blocks.set(h, refs + 1);
        }
      }
      for (const h of missing) {
        makeRoom(1);
        blocks.set(h, (blocks.get(h) ?? 0) + 1); // a hash repeated within one prompt is held twice
      }
      const mine = Math.max(0, blocksFor(r) - hashes.length);
      makeRoom(mine);
      own += mine;
      const held: Held = { epoch, hashes, own: mine };
      live.add(held);
      let released = false;
      return {
        cachedTokens,
        release() {
          if (released) return;
          released = true;
          live.delete(held);
          if (held.epoch !== epoch) return void (own -= held.hashes.length + held.own);
          own -= held.own;
          // Tail first: the suffix is queued for eviction before the prefix it extends.
          for (let i = held.hashes.length - 1; i >= 0; i--) {
            const h = held.hashes[i];
            const refs = (blocks.get(h) ?? 1) - 1;
            blocks.set(h, refs);
            if (refs === 0) free.add(h);
          }
        },
      };
    },
    clear() {
      epoch++;
      blocks.clear();
      free.clear();
      // What running sequences hold stays counted, as their own blocks, until each releases it.
      own = 0;
      for (const h of live) own += h.hashes.length + h.own;
    },
  };
}
