import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { blockHashes, cachedTokensOf as cachedTokens, tokensOf } from '../../prompt/blocks.js';
import { promptKey } from '../proxy/request.js';
import type { InstanceState, PromptKey, Work } from '../types.js';
import { ctxOf, gauges, host, NOW, pickerContract, seeded } from './contract.case.js';
import { prefix } from './prefix.js';
import { createPrefixIndex, ENTRY_BYTES } from './prefix-index.js';

const text = (n: number, seed: number) => Array.from({ length: n }, (_, i) => String.fromCharCode(97 + ((i * 7 + seed * 131 + ((i * seed) >> 3)) % 26))).join('');
const keyOf = (t: string, affinity?: string): PromptKey => ({ hashes: blockHashes(t), tokens: tokensOf(t), ...(affinity ? { affinity } : {}) });
const warmHosts = (n: number) => Array.from({ length: n }, (_, i) => host(`i${i}`, { gpu: gauges() }));

/** Picks and sends like the pool: the pick, then `sent` with the work; with `running`, it stays in flight (pool.acquire). */
function send(p: ReturnType<typeof prefix>, hosts: InstanceState[], key: PromptKey, at = NOW, running = false): { s: InstanceState; hit: number } {
  const s = p.pick(hosts, ctxOf(seeded(1), { kind: 'chat', prompt: key, now: at, tokens: 100 }))!;
  const work: Work = { kind: 'chat', tokens: 100, at, prompt: key };
  if (running) {
    s.outstanding++;
    (s.inflight ??= []).push(work);
  }
  const hit = p.sent!(s, work)!;
  return { s, hit };
}

describe('prefix', () => {
  pickerContract('prefix', () => prefix());

  it('keeps a conversation on the instance that served its first turn while load is even', () => {
    const p = prefix();
    const hosts = warmHosts(4);
    const system = text(8000, 1);
    let history = system;
    const first = send(p, hosts, keyOf(history, 'conv-1')).s.instance.id;
    for (let turn = 0; turn < 8; turn++) {
      history += `user\n${text(300, turn + 10)}\nassistant\n${text(400, turn + 20)}\n`;
      const { s, hit } = send(p, hosts, keyOf(history, 'conv-1'));
      expect(s.instance.id).toBe(first);
      // Everything before this turn's new text is expected cached there.
      expect(hit).toBeGreaterThan(tokensOf(history) - 200);
    }
    expect(p.prefixStats().decisions.cache).toBe(8);
  });

  it('moves a hot prefix to a second instance once the queue on the first costs more than recomputing it', () => {
    const p = prefix({ prefillTokensPerSecond: 10_000 });
    // 4 sequences at once each, 10 ms a token: a request of 100 tokens runs 1 s.
    const hosts = warmHosts(4).map((h) => Object.assign(h, { slots: 4, unitMs: { generation: 10 } }));
    const hot = text(8000, 2); // 2000 tokens: 200 ms of prefill
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) {
      // Requests keep running, sent 10 ms apart: the holder's slots fill, and its queue grows.
      const { s } = send(p, hosts, keyOf(`${hot}${text(200, 100 + i)}`), NOW + i * 10, true);
      seen.add(s.instance.id);
    }
    expect(seen.size).toBe(4);
    expect(p.prefixStats().decisions.spread).toBeGreaterThan(0);
    const loads = hosts.map((h) => h.outstanding);
    // No instance's queue runs away: the 40 are spread within a few of even.
    expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(4);
  });

  it('forgets an instance that restarted: its affinity goes, and nothing is expected cached there', () => {
    const p = prefix();
    const hosts = warmHosts(3);
    const key = keyOf(text(6400, 3), 'conv-r');
    const first = send(p, hosts, key).s;
    expect(send(p, hosts, key).hit).toBeGreaterThan(1500);
    p.forget!(first.instance.id);
    expect(p.prefixStats().entries).toBe(0);
    // Nothing cached anywhere now: the consistent hash decides, and nothing is expected.
    const again = send(p, hosts, key);
    expect(again.hit).toBe(0);
    expect(p.prefixStats().decisions.hash).toBe(2);
  });

  it('gives warming and drained instances no affinity traffic', () => {
    const p = prefix();
    const warm = host('warm', { gpu: gauges() });
    const key = keyOf(text(6400, 4), 'conv-w');
    p.sent!(warm, { kind: 'chat', at: NOW, prompt: key });
    // The holder now warms up again (ready anew: slow start) and another is idle: the idle one takes it, by hash.
    const ramping = host('warm', { gpu: gauges(), readySince: NOW - 1000 });
    const other = host('other', { gpu: gauges() });
    expect(p.pick([ramping, other], ctxOf(seeded(1), { kind: 'chat', prompt: key }))!.instance.id).toBe('other');
    const drained = host('warm', { gpu: gauges(), weight: 0 });
    expect(p.pick([drained, other], ctxOf(seeded(1), { kind: 'chat', prompt: key }))!.instance.id).toBe('other');
  });

  it('with nothing cached, spreads keys by consistent hash with bounded load', () => {
    const p = prefix();
    const hosts = warmHosts(4);
    const owners = new Map<string, string>();
    for (let i = 0; i < 400; i++) owners.set(`k${i}`, p.pick(hosts, ctxOf(seeded(1), { kind: 'chat', prompt: { hashes: [], tokens: 10, affinity: `k${i}` } }))!.instance.id);
    const counts = [...owners.values()].reduce((m, id) => m.set(id, (m.get(id) ?? 0) + 1), new Map<string, number>());
    expect(counts.size).toBe(4);
    // The same key, the same owner (while load is even).
    expect(p.pick(hosts, ctxOf(seeded(9), { kind: 'chat', prompt: { hashes: [], tokens: 10, affinity: 'k7' } }))!.instance.id).toBe(owners.get('k7'));
    // The owner over 1.25 × the average load hands the key on.
    const own = hosts.find((h) => h.instance.id === owners.get('k7'))!;
    own.outstanding = 10;
    expect(p.pick(hosts, ctxOf(seeded(9), { kind: 'chat', prompt: { hashes: [], tokens: 10, affinity: 'k7' } }))!.instance.id).not.toBe(own.instance.id);
  });

  it("places a conversation's first turn by its hint, not by who holds its system prompt, and its later turns by cache", () => {
    const p = prefix();
    const hosts = warmHosts(4);
    const system = text(8000, 30);
    const holder = send(p, hosts, keyOf(system)).s.instance.id;
    const firstOn = new Map<string, string>();
    for (let c = 0; c < 40; c++) firstOn.set(`conv-${c}`, send(p, hosts, keyOf(`${system}user\n${text(400, 300 + c)}`, `conv-${c}`)).s.instance.id);
    // By score alone all 40 would go to the one instance holding the 2000-token system prompt.
    const counts = [...firstOn.values()].reduce((m, id) => m.set(id, (m.get(id) ?? 0) + 1), new Map<string, number>());
    expect(counts.size).toBe(4);
    expect(counts.get(holder)).toBeLessThan(20);
    expect(p.prefixStats().decisions.hash).toBe(40);
    // Their second turns, a minute later, follow the cache their first turns left.
    for (let c = 0; c < 40; c++) {
      const { s, hit } = send(p, hosts, keyOf(`${system}user\n${text(400, 300 + c)}assistant\nok\nuser\nmore`, `conv-${c}`), NOW + 60_000);
      expect(s.instance.id).toBe(firstOn.get(`conv-${c}`));
      expect(hit).toBeGreaterThan(2000);
    }
    expect(p.prefixStats().decisions.cache).toBe(40);
  });

  it('sends a prompt nobody holds and no hint places to the instance with the most cache room', () => {
    const p = prefix();
    const hosts = warmHosts(4);
    for (const h of hosts) p.cacheBlocks!(h.instance.id, 1000);
    const on = new Map<string, number>();
    // 12 documents of 192 blocks, a minute apart (no load or backlog tells instances apart): 3 on each, as room decides.
    for (let d = 0; d < 12; d++) {
      const { s, hit } = send(p, hosts, keyOf(text(12_288, 500 + d)), NOW + d * 60_000);
      expect(hit).toBe(0);
      on.set(s.instance.id, (on.get(s.instance.id) ?? 0) + 1);
    }
    expect([...on.values()]).toEqual([3, 3, 3, 3]);
    expect(p.prefixStats().decisions.new).toBe(12);
  });

  it('sends a prompt nobody holds where it starts soonest before where there is most room', () => {
    const p = prefix({ prefillTokensPerSecond: 1000 });
    const [roomy, busyFree] = warmHosts(2);
    p.cacheBlocks!(roomy.instance.id, 10_000);
    p.cacheBlocks!(busyFree.instance.id, 1000);
    // Each holds a document; the roomy one (ten times the cache) has 2 s of prefill queued, the other none.
    p.sent!(busyFree, { kind: 'chat', at: NOW - 60_000, prompt: keyOf(text(8000, 950)) });
    p.sent!(roomy, { kind: 'chat', at: NOW, prompt: keyOf(text(8000, 951)) });
    const s = p.pick([roomy, busyFree], ctxOf(seeded(1), { kind: 'chat', prompt: keyOf(text(4000, 953)), now: NOW + 10, tokens: 100 }))!;
    expect(s).toBe(busyFree);
  });

  it("moves a shared prefix off a busy holder sooner than a conversation's history, whose copy nobody else would read", () => {
    const p = prefix({ prefillTokensPerSecond: 1000 });
    const [holder, other] = warmHosts(2);
    // 1200 tokens held; a backlog of 1.6 s on the holder (another prompt of 1600 tokens just sent there).
    const held = text(4800, 60);
    p.sent!(holder, { kind: 'chat', at: NOW - 5000, prompt: keyOf(held) });
    p.sent!(holder, { kind: 'chat', at: NOW, prompt: keyOf(text(6400, 61)) });
    const ctx = (key: PromptKey) => ctxOf(seeded(1), { kind: 'chat', prompt: key, now: NOW + 10 });
    // Recomputing 1.2 s elsewhere beats waiting 1.6 s for a shared prefix; a conversation's history counts it twice (2.4 s) and waits.
    expect(p.pick([holder, other], ctx(keyOf(`${held}next`)))!.instance.id).toBe(other.instance.id);
    const conv = keyOf(`${held}next`, 'conv-busy');
    p.pick([holder, other], ctx(conv)); // its first sight (by hash); the next turn is the one that follows its cache
    expect(p.pick([holder, other], ctx(conv))!.instance.id).toBe(holder.instance.id);
  });

  it("leaves a prefix that fits on one instance on its holder through a passing imbalance, and spreads one asked for by more than an instance's share", () => {
    const doc = keyOf(text(12_288, 700)); // 3072 tokens
    const pickWithHolderBusy = (p: ReturnType<typeof prefix>, hosts: InstanceState[], holder: InstanceState, at: number) => {
      // The holder carries 8, the others 2: over 1.25 × the average (+ 2), under 2 ×.
      for (const h of hosts) h.outstanding = h === holder ? 8 : 2;
      const s = p.pick(hosts, ctxOf(seeded(1), { kind: 'chat', prompt: keyOf(`${text(12_288, 700)}question`), now: at, tokens: 100 }))!;
      for (const h of hosts) h.outstanding = 0;
      return s;
    };
    // Cold: the document is 1 request in 21 (the rest one-off prompts).
    const cold = prefix();
    const coldHosts = warmHosts(4);
    const coldHolder = send(cold, coldHosts, doc, NOW).s;
    for (let i = 0; i < 20; i++) send(cold, coldHosts, keyOf(text(400, 800 + i)), NOW + (i + 1) * 60_000);
    expect(pickWithHolderBusy(cold, coldHosts, coldHolder, NOW + 30 * 60_000).instance.id).toBe(coldHolder.instance.id);
    // Hot: the same document in every request (its holder takes them while load is even).
    const hot = prefix();
    const hotHosts = warmHosts(4);
    const hotHolder = send(hot, hotHosts, doc, NOW).s;
    for (let i = 0; i < 20; i++) expect(send(hot, hotHosts, keyOf(`${text(12_288, 700)}q${i}`), NOW + (i + 1) * 60_000).s).toBe(hotHolder);
    expect(pickWithHolderBusy(hot, hotHosts, hotHolder, NOW + 30 * 60_000).instance.id).not.toBe(hotHolder.instance.id);
  });

  it('copies a prefix most of the traffic asks for to an idle instance rather than queue behind its holder', () => {
    const p = prefix({ prefillTokensPerSecond: 5000 });
    const hosts = warmHosts(4);
    const hot = text(8192, 900); // 2048 tokens: 410 ms of prefill
    const holder = send(p, hosts, keyOf(`${hot}q0`), NOW).s;
    for (let i = 1; i <= 20; i++) expect(send(p, hosts, keyOf(`${hot}q${i}`), NOW + i * 60_000).s).toBe(holder);
    // 300 ms of prefill queued on the holder: less than recomputing the prefix once, more than the question's own prefill.
    const at = NOW + 30 * 60_000;
    p.sent!(holder, { kind: 'chat', at, prompt: keyOf(text(6000, 901)) });
    const next = p.pick(hosts, ctxOf(seeded(1), { kind: 'chat', prompt: keyOf(`${hot}q21`), now: at + 1, tokens: 100 }))!;
    expect(next).not.toBe(holder);
  });

  it('gives back the prefill a request was counted for when it ends early (a client that left)', () => {
    const p = prefix({ prefillTokensPerSecond: 1000 });
    const hosts = warmHosts(2);
    const [holder, other] = hosts;
    // A 600-token prompt the holder computed a second ago (its prefill done), then 2000 tokens uncached: 2 s queued there.
    const medium = keyOf(text(2400, 41));
    p.sent!(holder, { kind: 'chat', at: NOW - 1000, prompt: medium });
    const big = keyOf(text(8000, 40));
    const work: Work = { kind: 'chat', at: NOW, prompt: big };
    p.sent!(holder, work);
    // While the backlog stands, recomputing the medium prompt elsewhere (0.6 s) beats waiting 2 s.
    const ctx = ctxOf(seeded(1), { kind: 'chat', prompt: medium, now: NOW + 10 });
    expect(p.pick(hosts, ctx)!.instance.id).toBe(other.instance.id);
    // Another request's end gives nothing back; the big one's, its client gone at 10 ms, gives the rest of its 2 s.
    p.ended!(holder, { kind: 'chat', at: NOW, prompt: big }, NOW + 10);
    expect(p.pick(hosts, ctx)!.instance.id).toBe(other.instance.id);
    p.ended!(holder, work, NOW + 10);
    expect(p.pick(hosts, ctx)!.instance.id).toBe(holder.instance.id);
  });

  it('expects what vLLM would cache: whole blocks, never the last token', () => {
    expect(cachedTokens(4, 64)).toBe(48);
    expect(cachedTokens(4, 65)).toBe(64);
    expect(cachedTokens(2, 1000)).toBe(32);
    expect(cachedTokens(0, 10)).toBe(0);
  });
});

describe('prefix and the pool', () => {
  it('forgets an instance whose prefix counter went back (a restart between two scrapes), and one that turns not ready', async () => {
    const { createPool } = await import('../pool.js');
    const picker = prefix();
    const pool = createPool({ instances: [{ id: 'a', url: 'http://a', weight: 100, models: ['m'], kinds: ['chat'] }], picker, initiallyReady: true, now: () => NOW });
    const a = pool.states()[0];
    const key = keyOf(text(6400, 9));
    pool.acquire(a, { kind: 'chat', at: NOW, prompt: key });
    expect(picker.prefixStats().entries).toBe(100);
    pool.updateGpu('a', gauges({ prefixQueries: 5000 }));
    pool.updateGpu('a', gauges({ prefixQueries: 7000 }));
    expect(picker.prefixStats().entries).toBe(100);
    pool.updateGpu('a', gauges({ prefixQueries: 120 }));
    expect(picker.prefixStats().entries).toBe(0);
    pool.acquire(a, { kind: 'chat', at: NOW, prompt: key });
    pool.setReady('a', false);
    expect(picker.prefixStats().entries).toBe(0);
  });
});

describe('prefix index', () => {
  // A million prompts take ~5 s alone and 20 s on a busy CI machine.
  it('stays under its memory cap after 1,000,000 distinct prompts', { timeout: 90_000 }, () => {
    const cap = 4 * 2 ** 20;
    const index = createPrefixIndex({ maxBytes: cap });
    index.setInstances(['a', 'b', 'c', 'd']);
    const ids = ['a', 'b', 'c', 'd'];
    let max = 0;
    for (let i = 0; i < 1_000_000; i++) {
      // 1–8 blocks each, distinct chains.
      const n = 1 + (i % 8);
      const hashes = Array.from({ length: n }, (_, k) => ((i * 2654435761 + k * 40503) >>> 2) & 0x3fffffff);
      index.record(ids[i % 4], hashes);
      if (i % 10_000 === 0) max = Math.max(max, index.entries());
    }
    expect(index.capacity()).toBe(cap / ENTRY_BYTES);
    expect(Math.max(max, index.entries())).toBeLessThanOrEqual(index.capacity());
    expect(index.entries()).toBeGreaterThan(index.capacity() * 0.9);
  });

  it("keeps no more of an instance than its KV cache holds (vllm:cache_config_info's num_gpu_blocks)", () => {
    const index = createPrefixIndex({ maxBytes: 10_000 * ENTRY_BYTES });
    index.setInstances(['a', 'b']);
    index.setLimit('a', 40);
    const long = blockHashes(text(64 * 60, 7));
    index.record('a', long);
    index.record('b', long);
    expect(index.matched('a', long)).toBe(40);
    expect(index.matched('b', long)).toBe(60);
    expect(index.entries()).toBe(100);
  });

  it('keeps a prefix longer than its suffix, and finds the longest one held', () => {
    const index = createPrefixIndex({ maxBytes: 100 * ENTRY_BYTES });
    index.setInstances(['a']);
    const long = blockHashes(text(64 * 60, 5));
    index.record('a', long);
    expect(index.matched('a', long)).toBe(60);
    // 50 other blocks: the oldest 10 go — the suffix of `long`, not its prefix.
    index.record('a', blockHashes(text(64 * 50, 6)));
    expect(index.matched('a', long)).toBe(50);
    expect(index.entries()).toBe(100);
  });

  it('takes huge, binary and adversarial prompts without throwing or growing past the cap (property)', () => {
    const p = prefix({ indexBytes: 256 * ENTRY_BYTES });
    const hosts = warmHosts(2);
    const content = fc.oneof(
      fc.string({ maxLength: 3000 }),
      fc.string({ unit: 'binary', maxLength: 3000 }),
      fc.constant('\u0000'.repeat(5000)),
      fc.constant('\ud800'.repeat(2000)),
      fc.array(fc.record({ type: fc.constant('text'), text: fc.string({ maxLength: 500 }) }), { maxLength: 5 }),
      fc.anything(),
    );
    const body = fc.oneof(
      fc.record({ messages: fc.array(fc.record({ role: fc.oneof(fc.string(), fc.anything()), content }), { maxLength: 6 }), user: fc.oneof(fc.string(), fc.anything()) }),
      fc.record({ prompt: fc.oneof(fc.string({ maxLength: 5000 }), fc.array(fc.string()), fc.anything()) }),
      fc.dictionary(fc.string(), fc.anything()),
    );
    fc.assert(
      fc.property(body, fc.oneof(fc.constant(undefined), fc.string(), fc.array(fc.string())), (b, session) => {
        const key = promptKey(b, session, JSON.stringify(b ?? null)?.length ?? 0);
        const s = p.pick(hosts, ctxOf(seeded(1), { kind: 'chat', ...(key ? { prompt: key } : {}) }));
        expect(s).toBeDefined();
        if (key) p.sent!(s!, { kind: 'chat', at: NOW, prompt: key });
        expect(p.prefixStats().entries).toBeLessThanOrEqual(256);
      }),
      { numRuns: 500 },
    );
    // A prompt of 10 MB is read no further than its cap (32k tokens) and counted whole.
    const huge = promptKey({ prompt: 'x'.repeat(10 * 2 ** 20) }, undefined, 10 * 2 ** 20);
    expect(huge!.hashes.length).toBe(2048);
    expect(huge!.tokens).toBeGreaterThanOrEqual(2.6e6);
  });
});
