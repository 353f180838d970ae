// The prefix cache seen from outside, over real sockets: what a client reads in
// `usage.prompt_tokens_details.cached_tokens` and a scraper in vLLM's
// prefix-cache counters. The exact rules (blocks, LRU, prefill time) are
// prefix-cache.test.ts's and engine.test.ts's; here, that the server applies them.
import { readSse } from './sse.case.js';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { blockHashes, renderPrompt, tokensOf } from '../prompt/blocks.js';
import { cachedTokensOf } from './prefix-cache.js';
import { createSimServer, type SimServer, type SimServerOptions } from './server.js';

const MODEL = 'llama-3-8b';
const servers: SimServer[] = [];

async function sim(opts: Partial<SimServerOptions> = {}): Promise<{ s: SimServer; base: string }> {
  const s = createSimServer({ log: silentLogger(), ttftMs: 2, tokensPerSecond: 1000, prefillTokensPerSecond: 1_000_000, ...opts });
  servers.push(s);
  const { port } = await s.start();
  return { s, base: `http://127.0.0.1:${port}` };
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

type Usage = { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { cached_tokens: number } };
type Chat = { model: string; messages: { role: string; content: string }[]; max_tokens?: number; stream?: boolean };

const words = 'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike'.split(' ');
/** `chars` characters of text that differs with `seed` from its first character on. */
const text = (chars: number, seed: number) => {
  let t = `${seed}:`;
  for (let i = 0; t.length < chars; i++) t += `${words[(i * 5 + seed) % words.length]} `;
  return t.slice(0, chars);
};
const chat = (system: string, user: string, extra: Partial<Chat> = {}): Chat => ({
  model: MODEL,
  messages: [
    { role: 'system', content: system },
    { role: 'user', content: user },
  ],
  max_tokens: 2,
  ...extra,
});

async function usageOf(base: string, body: object, path = '/v1/chat/completions', signal?: AbortSignal): Promise<Usage> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });
  expect(res.status).toBe(200);
  return ((await res.json()) as { usage: Usage }).usage;
}
const cached = async (base: string, body: object, path?: string) => (await usageOf(base, body, path)).prompt_tokens_details.cached_tokens;

/** The counters of one scrape (vllm: names, labelled like the sim's other vllm: metrics). */
async function counters(base: string): Promise<{ queries: number; hits: number; text: string }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const value = (name: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{model_name="${MODEL}"} `));
    if (!line) throw new Error(`no ${name} in metrics`);
    return Number(line.split(' ').at(-1));
  };
  return { queries: value('vllm:prefix_cache_queries_total'), hits: value('vllm:prefix_cache_hits_total'), text };
}

/** What the shared module says a body's prompt is: its tokens and its full blocks. */
function promptOf(body: object) {
  const t = renderPrompt(body)!;
  return { tokens: tokensOf(t), blocks: blockHashes(t).length, text: t };
}

describe('sim: prefix cache over HTTP', () => {
  it('caches a repeated prompt: the second time, its whole blocks (less the last, when it ends on a block)', async () => {
    const { base } = await sim();
    const body = chat(text(3000, 1), 'what does it say?');
    const p = promptOf(body);
    const first = await usageOf(base, body);
    expect(first.prompt_tokens).toBe(p.tokens);
    expect(first.prompt_tokens_details.cached_tokens).toBe(0);
    expect(await cached(base, body)).toBe(p.blocks * 16);
    expect(p.blocks * 16).toBeGreaterThan(700);

    // A prompt of whole blocks only: 640 characters, 160 tokens, 10 blocks. The last is computed again.
    const exact = { model: MODEL, prompt: text(640, 2), max_tokens: 1 };
    expect(await cached(base, exact, '/v1/completions')).toBe(0);
    expect(await cached(base, exact, '/v1/completions')).toBe(144);
  });

  it('caches the system prompt that two conversations share, up to the block where they part', async () => {
    const { base } = await sim();
    const system = text(4000, 3);
    const a = chat(system, text(500, 10));
    const b = chat(system, text(500, 11));
    await usageOf(base, a);
    const pa = promptOf(a);
    const pb = promptOf(b);
    let common = 0;
    while (pa.text[common] === pb.text[common]) common++;
    const shared = Math.floor(common / 64); // blocks of 64 characters wholly before the first difference
    expect(shared).toBeGreaterThan(50);
    expect(await cached(base, b)).toBe(cachedTokensOf(shared, pb.tokens));
  });

  it('counts, in tokens, every admitted prompt as queried and its cached part as hit', async () => {
    const { base } = await sim();
    const before = await counters(base);
    expect(before.text).toContain('# TYPE vllm:prefix_cache_queries_total counter');
    expect(before.text).toContain('# TYPE vllm:prefix_cache_hits_total counter');
    const bodies = [chat(text(2000, 4), 'one'), chat(text(2000, 4), 'two'), chat(text(2000, 4), 'one'), chat(text(900, 5), 'three')];
    let prompt = 0;
    let hit = 0;
    for (const body of bodies) {
      const u = await usageOf(base, body);
      prompt += u.prompt_tokens;
      hit += u.prompt_tokens_details.cached_tokens;
    }
    expect(hit).toBeGreaterThan(0);
    const after = await counters(base);
    expect(after.queries - before.queries).toBe(prompt);
    expect(after.hits - before.hits).toBe(hit);
  });

  it("reports the cached tokens in a stream's closing chunk", async () => {
    const { base } = await sim();
    const body = chat(text(2000, 6), 'stream it', { stream: true, max_tokens: 3 });
    const post = () => fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const closing = async () => {
      const events = await readSse(await post(), performance.now());
      expect(events.at(-1)!.data).toBe('[DONE]');
      return (JSON.parse(events.at(-2)!.data) as { usage: Usage }).usage;
    };
    expect((await closing()).prompt_tokens_details.cached_tokens).toBe(0);
    const again = await closing();
    expect(again.prompt_tokens_details.cached_tokens).toBe(promptOf(body).blocks * 16);
    expect(again.completion_tokens).toBe(3);
  });

  it("evicts the least recently used prompts once the cache is full, never a running sequence's blocks", async () => {
    // 64 blocks. A streaming request holds a 20-block prompt (and its decode space) all along.
    const { base } = await sim({ kvCacheTokens: 1024, tokensPerSecond: 20 });
    const held = chat(text(20 * 64 - 20, 7), 'hold');
    const ac = new AbortController();
    const stream = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...held, stream: true, max_tokens: 200 }),
      signal: ac.signal,
    });
    await stream.body!.getReader().read(); // running
    try {
      // Each of these needs 25 blocks: one at a time they fit only by evicting the ones before.
      const churn = [8, 9, 10].map((seed) => ({ model: MODEL, prompt: text(24 * 64 + 10, seed), max_tokens: 1 }));
      for (const body of churn) expect(await cached(base, body, '/v1/completions')).toBe(0);
      expect(await cached(base, churn[2], '/v1/completions')).toBe(24 * 16); // the most recent is still whole
      expect(await cached(base, churn[0], '/v1/completions')).toBe(0); // the least recent was evicted
      // The running sequence's prompt is still cached whole: a new turn of it finds every block.
      const next = chat(held.messages[0].content, 'hold, and more');
      expect(await cached(base, next)).toBe(cachedTokensOf(Math.floor((20 * 64 - 20 + 'system\n'.length + 1 + 'user\n'.length) / 64), promptOf(next).tokens));
    } finally {
      ac.abort();
    }
  });

  it('forgets everything on a restart: nothing cached, the counters back to 0', async () => {
    const { s, base } = await sim();
    const body = chat(text(3000, 12), 'again');
    await usageOf(base, body);
    expect(await cached(base, body)).toBeGreaterThan(0);
    expect((await counters(base)).queries).toBeGreaterThan(0);
    await s.setFault({ kind: 'crash' });
    await s.setFault({ kind: 'none' });
    // fetch's pool may still hand out a socket the crash cut: the first requests after it may fail, once each.
    for (let i = 0; i < 5; i++) if (await fetch(`${base}/health`).then(() => true, () => false)) break;
    expect(await counters(base)).toMatchObject({ queries: 0, hits: 0 });
    expect(await cached(base, body)).toBe(0);
  });

  it('with the prefix cache off, reports no hit ever, while still counting what was queried', async () => {
    const { base } = await sim({ prefixCache: false });
    const body = chat(text(3000, 13), 'twice');
    expect(await cached(base, body)).toBe(0);
    expect(await cached(base, body)).toBe(0);
    const c = await counters(base);
    expect(c.hits).toBe(0);
    expect(c.queries).toBe(2 * promptOf(body).tokens);
  });

  it('answers an uncached long prompt no sooner than its prefill allows', async () => {
    // 2000 tokens at 10 000 a second: 200 ms of prefill (the exact schedule is engine.test.ts's, on a fake clock).
    const { base } = await sim({ prefillTokensPerSecond: 10_000 });
    const body = { model: MODEL, prompt: text(8000, 14), max_tokens: 1 };
    const t0 = performance.now();
    expect(await cached(base, body, '/v1/completions')).toBe(0);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(195);
  });
});
