// A prompt as the KV cache sees it, shared by the sim's cache (src/sim) and
// the balancer's `prefix` strategy (src/balancer/pickers/prefix.ts), so that
// what one predicts the other measures.
//
// Tokens: a documented approximation, not a tokenizer. One token is 4
// characters (UTF-16 code units) of the rendered prompt, OpenAI's rule of
// thumb for English text ("one token is about 4 characters"); a tokenizer
// package for one model family would be no truer for another, and costs far
// more than the 50 µs an 8k-token prompt may take here. Blocks: 16 tokens (64
// characters), vLLM's default `block_size`; only full blocks are cached, as in
// vLLM's automatic prefix caching. Each block is named by a hash chained over
// every block before it, so equal hashes mean (up to a collision, 1 in 2^30)
// equal prefixes.
export const CHARS_PER_TOKEN = 4;
export const BLOCK_TOKENS = 16;
export const BLOCK_CHARS = CHARS_PER_TOKEN * BLOCK_TOKENS;

/**
 * Cached tokens of a prompt of `tokens` tokens whose first `blocks` blocks are
 * cached: whole blocks, and never the last token, since at least one token is
 * always computed (vLLM caps a hit at `tokens - 1`, so a prompt cached whole
 * recomputes its last block). The sim measures and the balancer predicts by it.
 */
export function cachedTokensOf(blocks: number, tokens: number): number {
  if (tokens <= 0) return 0;
  return Math.floor(Math.min(blocks * BLOCK_TOKENS, tokens - 1) / BLOCK_TOKENS) * BLOCK_TOKENS;
}

/** Tokens of a rendered prompt. */
export const tokensOf = (text: string): number => Math.ceil(text.length / CHARS_PER_TOKEN);

type Message = { role?: unknown; content?: unknown };

/** A message's content: a string, or the text parts of an array (OpenAI's content parts); anything else is empty. */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let out = '';
  for (const p of content as { type?: unknown; text?: unknown }[]) if (p && typeof p.text === 'string') out += p.text;
  return out;
}

/**
 * The prompt a model server would prefill for a chat or completion body: chat
 * messages in order, each `role\ncontent\n` (a stable rendering, the same for
 * every turn that repeats them), or the completion prompt (an array joined by
 * newlines). At most `maxChars` characters are rendered: a huge prompt is read
 * no further than its cacheable prefix. Undefined when the body has neither.
 */
export function renderPrompt(body: { messages?: unknown; prompt?: unknown }, maxChars = Number.POSITIVE_INFINITY): string | undefined {
  if (Array.isArray(body.messages)) {
    let out = '';
    for (const m of body.messages as Message[]) {
      if (out.length >= maxChars) break;
      out += `${typeof m?.role === 'string' ? m.role : ''}\n${contentText(m?.content)}\n`;
    }
    return out.length > maxChars ? out.slice(0, maxChars) : out;
  }
  const p = body.prompt;
  if (typeof p === 'string') return p.length > maxChars ? p.slice(0, maxChars) : p;
  if (Array.isArray(p) && p.every((x) => typeof x === 'string')) {
    const text = (p).join('\n');
    return text.length > maxChars ? text.slice(0, maxChars) : text;
  }
  return undefined;
}

/**
 * The chained hashes of the prompt's full blocks, at most `maxBlocks` of them:
 * 30-bit integers (small integers for V8, cheap Map keys). The text is read as
 * UTF-16 code units two at a time (one 32-bit word), in two lanes of
 * murmur3's 32-bit mixing, the chain carried from block to block; about 20 µs
 * for an 8k-token prompt.
 */
export function blockHashes(text: string, maxBlocks = Number.POSITIVE_INFINITY): number[] {
  const n = Math.min(Math.floor(text.length / BLOCK_CHARS), maxBlocks);
  if (n <= 0) return [];
  let buf = Buffer.from(text.length > n * BLOCK_CHARS ? text.slice(0, n * BLOCK_CHARS) : text, 'utf16le');
  if (buf.byteOffset % 4 !== 0) buf = Buffer.from(buf); // a pooled slice may be unaligned for a 32-bit view
  const words = new Int32Array(buf.buffer, buf.byteOffset, buf.length >> 2);
  const per = BLOCK_CHARS / 2;
  const out = new Array<number>(n);
  let h = 0x9747b28c | 0;
  let g = 0x1b873593 | 0;
  for (let b = 0; b < n; b++) {
    const end = (b + 1) * per;
    for (let i = b * per; i < end; i += 2) {
      let k = Math.imul(words[i], 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      h ^= Math.imul(k, 0x1b873593);
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
      let j = Math.imul(words[i + 1], 0x85ebca6b);
      j = (j << 15) | (j >>> 17);
      g ^= Math.imul(j, 0xc2b2ae35);
      g = (g << 13) | (g >>> 19);
      g = (Math.imul(g, 5) + 0x561ccd1b) | 0;
    }
    // fmix32 of both lanes so far: the block's name (the lanes themselves go on unmixed).
    let f = h ^ Math.imul(g, 0x27d4eb2f) ^ end;
    f = Math.imul(f ^ (f >>> 16), 0x85ebca6b);
    f = Math.imul(f ^ (f >>> 13), 0xc2b2ae35);
    f ^= f >>> 16;
    out[b] = f & 0x3fffffff;
  }
  return out;
}
