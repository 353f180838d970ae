import { describe, expect, it } from 'vitest';
import { cachedTokensOf, createPrefixCache, type BlockRequest } from './prefix-cache.js';

// Prompts here name their blocks with small numbers; real ones are chained hashes (src/prompt/blocks.ts).
const prompt = (hashes: number[], extraTokens = 0, decodeTokens = 0): BlockRequest => ({
  promptTokens: hashes.length * 16 + extraTokens,
  hashes,
  decodeTokens,
});
/** Admits and releases `r` at once: what a finished request leaves behind. */
const run = (c: ReturnType<typeof createPrefixCache>, r: BlockRequest) => {
  const a = c.take(r);
  a.release();
  return a.cachedTokens;
};
/** Cached tokens `r` would get now (admitting it, then giving it back). */
const probe = run;

describe('cachedTokensOf', () => {
  it.each([
    [0, 40, 0],
    [2, 40, 32], // 2 whole blocks and 8 more tokens: both blocks
    [2, 32, 16], // the whole prompt cached: its last block is computed again
    [1, 32, 16],
    [5, 33, 32], // never more than the prompt's own blocks, less the last token
    [3, 0, 0],
  ])('%i cached blocks of a %i-token prompt: %i tokens', (blocks, tokens, expected) => {
    expect(cachedTokensOf(blocks, tokens)).toBe(expected);
  });
});

describe('prefix cache', () => {
  it('finds a repeated prompt, and a shared prefix up to the first block that differs', () => {
    const c = createPrefixCache({ capacityBlocks: 100, enabled: true });
    expect(run(c, prompt([1, 2, 3], 8))).toBe(0);
    expect(run(c, prompt([1, 2, 3], 8))).toBe(48);
    expect(run(c, prompt([1, 2, 3]))).toBe(32); // all whole blocks: the last is recomputed
    expect(run(c, prompt([1, 2, 9, 3], 4))).toBe(32);
    expect(run(c, prompt([7, 2, 3], 4))).toBe(0); // a miss first: nothing after it counts
  });

  it('counts against the budget only the blocks a request newly needs: cached ones are shared', () => {
    const c = createPrefixCache({ capacityBlocks: 4, enabled: true });
    const a = c.take(prompt([1, 2, 3]));
    expect(c.used()).toBe(3);
    // Its 3 prompt blocks are held by a, so only the 16 decode tokens' block is new: it fits in the 1 left.
    expect(c.fits(prompt([1, 2, 3], 0, 16))).toBe(true);
    expect(c.fits(prompt([1, 2, 4], 0, 16))).toBe(false); // 2 new
    const b = c.take(prompt([1, 2, 3], 0, 16));
    expect(b.cachedTokens).toBe(32);
    expect(c.used()).toBe(4);
    a.release();
    expect(c.used()).toBe(4); // b still holds the shared blocks
    b.release();
    expect(c.used()).toBe(0);
    expect(c.cached()).toBe(3); // freed, still cached
  });

  it('counts a free cached block as taken again once a request holds it', () => {
    const c = createPrefixCache({ capacityBlocks: 4, enabled: true });
    run(c, prompt([1, 2]));
    const other = c.take(prompt([8, 9]));
    // 2 cached blocks free, 2 held: a request for [1, 2] + 1 own block needs 3 of the 2 free.
    expect(c.fits(prompt([1, 2], 0, 16))).toBe(false);
    other.release();
    expect(c.fits(prompt([1, 2], 0, 16))).toBe(true);
  });

  it('evicts the least recently freed blocks first, and a request tail first, so that a prefix outlives its suffix', () => {
    const c = createPrefixCache({ capacityBlocks: 4, enabled: true });
    run(c, prompt([1, 2])); // freed: 2, then 1
    run(c, prompt([3, 4])); // then 4, then 3
    run(c, prompt([5], 4)); // needs 2 blocks (its whole one, and 4 tokens of its own): evicts 2, then 1
    expect([c.matched([1, 2]), c.matched([3, 4]), c.matched([5])]).toEqual([0, 2, 1]);

    expect(probe(c, prompt([5], 4))).toBe(16); // used again: now the most recent, after 4 and 3
    run(c, prompt([6], 4)); // room for 1 more: 4 goes, the tail of [3, 4], its prefix stays
    expect([c.matched([3, 4]), c.matched([5]), c.matched([6])]).toEqual([1, 1, 1]);
    run(c, prompt([7], 4)); // then 3
    expect([c.matched([3, 4]), c.matched([5]), c.matched([6]), c.matched([7])]).toEqual([0, 1, 1, 1]);
  });

  it('never evicts the blocks of a running sequence', () => {
    const c = createPrefixCache({ capacityBlocks: 6, enabled: true });
    const running = c.take(prompt([1, 2, 3]));
    for (let i = 0; i < 20; i++) {
      const r = prompt([100 + 2 * i, 101 + 2 * i]); // churn: each needs room that only free blocks can give
      expect(c.fits(r)).toBe(true);
      run(c, r);
    }
    expect(c.fits(prompt([50, 51, 52, 53]))).toBe(false); // 4 new, 3 free: held blocks are not room
    expect(c.matched([1, 2, 3])).toBe(3);
    const again = c.take(prompt([1, 2, 3], 8));
    expect(again.cachedTokens).toBe(48);
    again.release();
    running.release();
    expect(c.used()).toBe(0);
  });

  it('empties on clear, while what running sequences hold stays counted until they release it', () => {
    const c = createPrefixCache({ capacityBlocks: 10, enabled: true });
    run(c, prompt([1, 2, 3]));
    const running = c.take(prompt([1, 2, 4], 4)); // [1, 2] shared with the cached ones
    c.clear();
    expect(c.cached()).toBe(0);
    expect(c.used()).toBe(4);
    running.release();
    expect(c.used()).toBe(0);
    expect(probe(c, prompt([1, 2, 3], 8))).toBe(0);
  });

  it('disabled, caches nothing: every prompt is computed in full, its blocks freed at its end', () => {
    const c = createPrefixCache({ capacityBlocks: 10, enabled: false });
    expect(run(c, prompt([1, 2, 3], 8))).toBe(0);
    expect(run(c, prompt([1, 2, 3], 8))).toBe(0);
    expect(c.cached()).toBe(0);
    const a = c.take(prompt([1, 2, 3], 8));
    expect(c.used()).toBe(4);
    a.release();
    expect(c.used()).toBe(0);
  });
});
