// Prefix-cache-aware picking: send a prompt where its prefix is cached, as
// long as waiting there costs less than computing it again elsewhere.
//
// Each instance is scored by its expected time to first token for this
// request: when its prefill could start (the later of a free decode slot, from
// the `gpu` strategy's load model, and the end of the prefills this balancer
// already sent it, a FIFO at the instance's prefill speed) plus the prefill of
// the part of the prompt it does not hold (prefix-index.ts's estimate),
// divided by its weight. A hot prefix thus stays on one instance until the
// queue there costs more than recomputing the prefix on a second one, which
// then holds it too. Near-equal scores (2 %) go to the instance the client's
// affinity hint hashes to (below), else the least outstanding.
//
// A conversation's first turn (an affinity hint not seen before, sessions.ts)
// and any hinted request nobody holds any of go by consistent hashing with
// bounded load on the hint (Mirrokni et al., as HAProxy's
// hash-balance-factor): the first instance on the ring whose load is under
// 1.25 × the average. A conversation's later turns then find their history
// there; placed by score instead, first turns crowd onto the few instances
// holding their shared system prompt and stay there for the conversation's
// life (bench:prefix's multi-turn saw one instance take 2× another's share).
// A prompt nobody holds and no hint places (a new document, a one-off
// prompt) goes, among the instances that would start it soonest, to those
// with the most cache room, as SGLang's router sends it to the worker with
// the smallest tree.
//
// How tight the load guard is depends on how much traffic shares the prefix
// (popularity.ts): a prefix more than one instance's share of requests asks
// for cannot stay on one instance, so its holders are bounded at 1.25 × the
// average (+ 2) and it spreads; one that fits on one instance is left on its
// holder up to 2 × the average, since a copy elsewhere evicts another prefix
// that is then missed in its turn. A prefix two instances' share or more asks
// for is worth a copy on every instance: its first prefill on one is not held
// against it, and it goes wherever it would start soonest.
//
// Instances warming up (slow start) are scored as holding nothing and are
// never a hash owner while another can take the request: no affinity traffic.
// Drained (weight 0), ejected and not-ready instances never reach a picker.
import { cachedTokensOf as cachedTokens } from '../../prompt/blocks.js';
import { PREFIX_DECISIONS, type InstanceState, type PickContext, type Picker, type PrefixDecision, type PrefixStats, type PromptKey, type Work } from '../types.js';
import { DEFAULT_GPU_STALE_MS, DEFAULT_TOKENS, expectedCompletionMs, freshGauges, gpu, type GpuOptions } from './gpu.js';
import { createPrefixIndex, DEFAULT_INDEX_BYTES, ENTRY_BYTES } from './prefix-index.js';
import { createPopularity } from './popularity.js';
import { createSessions } from './sessions.js';
import { DEFAULT_SLOW_START_MS, slowStartFactor, weighted, windowOf } from './weight.js';

export type PrefixOptions = GpuOptions & {
  /** An instance's prefill speed (prompt tokens per second) — the sim's default, vLLM's for an 8B model on one GPU (src/sim/README.md). */
  prefillTokensPerSecond?: number;
  /** The index's memory cap (bytes). Default 64 MiB. */
  indexBytes?: number;
  /** Bounded load of the consistent hash, and of a hot prefix's holder: this many times the average load. Default 1.25. */
  loadFactor?: number;
  /** The bounded load of a prefix that fits on one instance (popularity.ts): its holder may carry this many times the average. Default 2. */
  coldLoadFactor?: number;
};

export const DEFAULT_PREFILL_TOKENS_PER_SECOND = 20_000;

export type PrefixPicker = Picker & { prefixStats(): PrefixStats; setInstances(ids: readonly string[]): void };

/** FNV-1a, then murmur3's finalizer: a ring position for a key or a virtual node. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
const VNODES = 64;

/** A ring of `VNODES` points per instance, sorted; rebuilt when the candidates change. */
function ringOf(ids: readonly string[]): { at: number; id: string }[] {
  const points: { at: number; id: string }[] = [];
  for (const id of ids) for (let v = 0; v < VNODES; v++) points.push({ at: hash32(`${id}#${v}`), id });
  return points.sort((a, b) => a.at - b.at);
}

/**
 * Consistent hashing with bounded load: the owner of `key` among `items` is
 * the first instance on the ring whose load stays under `loadFactor` × the
 * average, warm ones before instances still in slow start.
 */
function createOwner(loadFactor: number) {
  let ring: { key: string; points: { at: number; id: string }[] } = { key: '', points: [] };
  return function owner(items: { state: InstanceState; warm: boolean }[], key: string): InstanceState | undefined {
    const ids = items.map((i) => i.state.instance.id).sort();
    const ringKey = ids.join('\n');
    if (ring.key !== ringKey) ring = { key: ringKey, points: ringOf(ids) };
    const byId = new Map(items.map((i) => [i.state.instance.id, i]));
    let load = 1;
    for (const i of items) load += i.state.outstanding;
    const bound = Math.ceil((loadFactor * load) / items.length);
    const h = hash32(key);
    const pts = ring.points;
    let lo = 0;
    let hi = pts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (pts[mid].at < h) lo = mid + 1;
      else hi = mid;
    }
    let cold: InstanceState | undefined;
    for (let k = 0; k < pts.length; k++) {
      const i = byId.get(pts[(lo + k) % pts.length].id)!;
      if (i.state.outstanding + 1 > bound) continue;
      if (i.warm) return i.state;
      cold ??= i.state;
    }
    return cold;
  };
}

/**
 * A prompt nobody holds and no client hint places: among the instances that
 * would start it soonest (a score within 10 % of the best), those with the
 * most room in their caches (less than one of this prompt short of the most),
 * as SGLang's router sends it to the worker with the smallest tree. Placed by
 * hash on its first block, as before, bench:prefix's 32 RAG documents landed
 * up to 12 on an instance that holds 10, which then evicted what the others
 * would have kept; placed by room first, a one-off prompt waited behind a
 * long prefill queue for room it never reuses.
 */
function roomiest(items: Scored[], blocks: number, room: (id: string) => number): Scored[] {
  let best = Infinity;
  for (const s of items) best = Math.min(best, s.score);
  const near = items.filter((s) => s.score <= best * 1.1 + 1e-9);
  const rooms = near.map((i) => room(i.state.instance.id));
  const most = Math.max(...rooms);
  return near.filter((_, k) => rooms[k] === most || rooms[k] > most - blocks);
}

type Scored = { state: InstanceState; weight: number; warm: boolean; hit: number; score: number };

/**
 * The lowest score, near-equal ones (2 %) by the key's ring owner, then the
 * least outstanding. Bounded load on top: an instance carrying more than its
 * share (loadFactor × the weighted average, + 2) takes nothing until the
 * others catch up, whatever it holds: the load model learns a server's slots
 * only once seen full, and a burst must not pile onto a holder meanwhile.
 */
function choose(scored: Scored[], key: string | undefined, owner: ReturnType<typeof createOwner>, loadFactor: number): Scored {
  let load = 1;
  let weights = 0;
  for (const s of scored) [load, weights] = [load + s.state.outstanding, weights + s.weight];
  const open = scored.filter((s) => s.state.outstanding + 1 <= Math.ceil((loadFactor * load * s.weight) / weights) + 2);
  const pool = open.length ? open : scored;
  let best = Infinity;
  for (const s of pool) best = Math.min(best, s.score);
  const near = pool.filter((s) => s.score <= best * 1.02 + 1e-9);
  const preferred = near.length > 1 && key !== undefined ? owner(near, key) : undefined;
  return preferred ? near.find((s) => s.state === preferred)! : near.reduce((a, b) => (b.state.outstanding / b.weight < a.state.outstanding / a.weight ? b : a));
}

type Warm = ReturnType<typeof weighted>[number] & { warm: boolean };
type ScoreDeps = {
  matched: (id: string) => number;
  /** Filled with each instance's matched blocks, for `sent`. */
  byId: Map<string, number>;
  prefillFreeAt: ReadonlyMap<string, number>;
  staleMs: number;
  kvFull: number;
  defaultTokens: number;
  prefillMsPerToken: number;
};

/** Each instance's expected time to first token (above), divided by its weight; and the most tokens any holds. */
function scoreAll(items: Warm[], ctx: PickContext, p: PromptKey, d: ScoreDeps): { scored: Scored[]; most: number } {
  const units = ctx.tokens !== undefined && ctx.tokens > 0 ? ctx.tokens : d.defaultTokens;
  let slowest = 0;
  for (const i of items) slowest = Math.max(slowest, i.state.unitMs?.generation ?? 0);
  let most = 0;
  const scored = items.map((i) => {
    const id = i.state.instance.id;
    const blocks = d.matched(id);
    d.byId.set(id, blocks);
    const hit = i.warm ? cachedTokens(blocks, p.tokens) : 0;
    most = Math.max(most, hit);
    const g = freshGauges(i.state, ctx.now, d.staleMs);
    const speed = Math.max(i.state.unitMs?.generation ?? (slowest || 1), 1e-6);
    // When a slot frees: the gpu model's start, without this request's own decode.
    const slot = expectedCompletionMs(i.state, 'generation', units, ctx.now, speed, g, d.kvFull, d.defaultTokens) - units * speed;
    const start = Math.max(slot, (d.prefillFreeAt.get(id) ?? 0) - ctx.now);
    return { ...i, hit, score: Math.max(0, start) + (p.tokens - hit) * d.prefillMsPerToken };
  });
  // A conversation's history (a hinted request's) that another instance holds costs twice to recompute here: the prefill now, and a
  // copy nobody else will read taking cache room (bench:prefix multi-turn, median of 3: 11 conversations moved instead of 28, TTFT p99
  // 269 ms instead of 397). A shared prefix (no hint) costs once: a second copy serves its other clients.
  const twice = p.affinity !== undefined ? 1 : 0;
  for (const s of scored) s.score = (s.score + twice * (most - s.hit) * d.prefillMsPerToken) / s.weight;
  return { scored, most };
}

export function prefix(opts: PrefixOptions = {}): PrefixPicker {
  const staleMs = opts.staleMs ?? DEFAULT_GPU_STALE_MS;
  const kvFull = opts.kvFull ?? 0.98;
  const defaultTokens = opts.defaultTokens ?? DEFAULT_TOKENS;
  const prefillMsPerToken = 1000 / (opts.prefillTokensPerSecond ?? DEFAULT_PREFILL_TOKENS_PER_SECOND);
  const loadFactor = opts.loadFactor ?? 1.25;
  const coldLoadFactor = opts.coldLoadFactor ?? 2;
  const popularity = createPopularity();
  const index = createPrefixIndex({ maxBytes: opts.indexBytes });
  // A hint and its Map entry take about 100 bytes: 1 KiB of cap per session keeps the table at a tenth of the index.
  const sessions = createSessions(Math.max(1024, Math.floor((opts.indexBytes ?? DEFAULT_INDEX_BYTES) / 1024)));
  const fallback = gpu(opts);
  /** When the prefills this balancer sent each instance end (ms, the pool's clock). */
  const prefillFreeAt = new Map<string, number>();
  /** Each request's prefill, as counted there: a request that ends before its prefill did gives the rest back. */
  const prefills = new WeakMap<Work, { id: string; end: number; ms: number }>();
  const decisions = Object.fromEntries(PREFIX_DECISIONS.map((d) => [d, 0])) as Record<PrefixDecision, number>;
  const totals = { promptTokens: 0, predictedHitTokens: 0 };
  const owner = createOwner(loadFactor);
  /** The blocks the last pick found each instance holding, for its prompt: `sent` right after needs no second lookup. */
  let lastMatched: { prompt: PromptKey; byId: Map<string, number> } | undefined;

  function pickFor(candidates: readonly InstanceState[], ctx: PickContext, p: PromptKey): InstanceState | undefined {
    const window = windowOf(ctx, opts.slowStartMs ?? DEFAULT_SLOW_START_MS);
    const items = weighted(candidates, ctx, window)
      .filter((i) => !i.state.gpu?.memoryExhausted)
      .map((i) => ({ ...i, warm: slowStartFactor(i.state, ctx.now, window) >= 1 }));
    if (items.length === 0) return undefined;
    const byId = new Map<string, number>();
    lastMatched = { prompt: p, byId };
    const { scored, most } = scoreAll(items, ctx, p, { matched: (id) => index.matched(id, p.hashes), byId, prefillFreeAt, staleMs, kvFull, defaultTokens, prefillMsPerToken });
    // The prefix as held: the block where the longest cached match ends.
    let depth = 0;
    for (const b of byId.values()) depth = Math.max(depth, b);
    const key = depth > 0 ? p.hashes[depth - 1] : undefined;
    popularity.add(key);
    if (p.affinity !== undefined && (!sessions.seen(p.affinity) || most === 0)) {
      const s = owner(items, p.affinity);
      if (s) {
        decisions.hash++;
        return s;
      }
    }
    if (most === 0) {
      const chosen = choose(roomiest(scored, p.hashes.length, (id) => index.room(id)), undefined, owner, loadFactor);
      decisions.new++;
      return chosen.state;
    }
    // More than one instance's share of the traffic on this prefix: its holders' load bounded tight, so that it spreads.
    const demand = key !== undefined ? popularity.share(key) * items.length : 0;
    // Two instances' share or more: a copy everywhere pays for itself many times over, so its first prefill on an
    // instance is not held against it, and the prefix goes wherever it starts soonest (bench:prefix's hot prefix, 80 %
    // of requests, stayed on 3 of 4 instances, the fourth idle but for one-off prompts).
    if (demand >= 2 && p.affinity === undefined) for (const s of scored) if (s.warm) s.score -= ((most - s.hit) * prefillMsPerToken) / s.weight;
    const chosen = choose(scored, p.affinity, owner, demand > 1 ? loadFactor : coldLoadFactor);
    // Something is held somewhere (most > 0): taken where the most is, or spread off it.
    decisions[chosen.hit >= most ? 'cache' : 'spread']++;
    return chosen.state;
  }

  return {
    name: 'prefix',
    wantsPrompt: true,
    pick(candidates, ctx) {
      const p = ctx.prompt;
      if (!p || ctx.kind === 'embeddings') {
        decisions.load++;
        return fallback.pick(candidates, ctx);
      }
      return pickFor(candidates, ctx, p);
    },
    sent(s: InstanceState, work: Work) {
      const p = work.prompt;
      if (!p) return undefined;
      const id = s.instance.id;
      const blocks = (lastMatched?.prompt === p ? lastMatched.byId.get(id) : undefined) ?? index.matched(id, p.hashes);
      lastMatched = undefined;
      const hit = cachedTokens(blocks, p.tokens);
      index.record(id, p.hashes, blocks);
      const ms = (p.tokens - hit) * prefillMsPerToken;
      const end = Math.max(work.at, prefillFreeAt.get(id) ?? 0) + ms;
      prefillFreeAt.set(id, end);
      prefills.set(work, { id, end, ms });
      totals.promptTokens += p.tokens;
      totals.predictedHitTokens += hit;
      return hit;
    },
    ended(s, work, now) {
      const f = prefills.get(work);
      if (!f || f.id !== s.instance.id || now >= f.end) return;
      // Ended before its prefill could have: the instance dropped it (a client that left), so what was left of it is not ahead of anyone.
      const free = prefillFreeAt.get(f.id);
      if (free !== undefined) prefillFreeAt.set(f.id, Math.max(now, free - Math.min(f.ms, f.end - now)));
    },
    forget(id) {
      index.forget(id);
      prefillFreeAt.delete(id);
    },
    cacheBlocks(id, blocks) {
      index.setLimit(id, blocks);
    },
    setInstances(ids) {
      index.setInstances(ids);
      for (const id of [...prefillFreeAt.keys()]) if (!ids.includes(id)) prefillFreeAt.delete(id);
    },
    prefixStats: () => ({ entries: index.entries(), capacity: index.capacity(), bytes: index.entries() * ENTRY_BYTES, ...totals, decisions: { ...decisions } }),
  };
}
