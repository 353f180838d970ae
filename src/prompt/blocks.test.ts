import { describe, expect, it } from 'vitest';
import { BLOCK_CHARS, blockHashes, renderPrompt, tokensOf } from './blocks.js';

const text = (n: number, seed = 1) => Array.from({ length: n }, (_, i) => String.fromCharCode(97 + ((i * 7 + seed * 13) % 26))).join('');

describe('prompt blocks', () => {
  it('names equal prefixes alike and tells them apart from the first block that differs', () => {
    const base = text(BLOCK_CHARS * 10);
    const other = base.slice(0, BLOCK_CHARS * 6) + 'X' + base.slice(BLOCK_CHARS * 6 + 1);
    const [a, b] = [blockHashes(base), blockHashes(other)];
    expect(a).toHaveLength(10);
    expect(b.slice(0, 6)).toEqual(a.slice(0, 6));
    // Chained: every block after the change differs too, though its own text is equal.
    for (let i = 6; i < 10; i++) expect(b[i]).not.toBe(a[i]);
    expect(new Set(a).size).toBe(10);
    for (const h of a) expect(h >= 0 && h < 2 ** 30 && Number.isInteger(h)).toBe(true);
  });

  it('hashes only full blocks, at most maxBlocks, and non-Latin text by every code unit', () => {
    expect(blockHashes(text(BLOCK_CHARS - 1))).toEqual([]);
    expect(blockHashes(text(BLOCK_CHARS * 3 + 5))).toHaveLength(3);
    expect(blockHashes(text(BLOCK_CHARS * 3 + 5), 2)).toEqual(blockHashes(text(BLOCK_CHARS * 3 + 5)).slice(0, 2));
    const thai = 'สวัสดีครับ'.repeat(20);
    const thai2 = 'สวัสดีค่ะ'.repeat(22);
    expect(blockHashes(thai)[0]).not.toBe(blockHashes(thai2)[0]);
    // Same text at an unaligned offset in a pooled buffer or not: the same names.
    expect(blockHashes(`${text(BLOCK_CHARS * 2)}`)).toEqual(blockHashes(text(BLOCK_CHARS * 2)));
  });

  it('renders chat turns stably, so a later turn starts with the earlier one', () => {
    const turn1 = [{ role: 'system', content: 'S' }, { role: 'user', content: 'hello' }];
    const turn2 = [...turn1, { role: 'assistant', content: [{ type: 'text', text: 'hi' }] }, { role: 'user', content: 'more' }];
    const r1 = renderPrompt({ messages: turn1 })!;
    const r2 = renderPrompt({ messages: turn2 })!;
    expect(r2.startsWith(r1)).toBe(true);
    expect(r2).toContain('assistant\nhi\n');
    expect(renderPrompt({ prompt: ['a', 'b'] })).toBe('a\nb');
    expect(renderPrompt({ prompt: 7 })).toBeUndefined();
    expect(renderPrompt({ messages: [{ role: 'user', content: 'x'.repeat(10_000) }] }, 100)).toHaveLength(100);
    expect(tokensOf('abcde')).toBe(2);
  });
});
