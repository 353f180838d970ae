// Prefer the instance that would finish this request first, from its observed
// speed, the work already sent to it, and its scraped vLLM gauges.
import { workClass, type GpuGauges, type InstanceState, type PickContext, type Picker, type WorkClass } from '../types.js';
import { DEFAULT_SLOW_START_MS, lowest, weighted } from './weight.js';

export type GpuOptions = {
  slowStartMs?: number;
  /** Gauges older than this (or never scraped) count as saturated. Default 5 s. */
  staleMs?: number;
  /** KV-cache usage at or above this counts as full: a new sequence waits for one to end. Default 0.98. */
  kvFull?: number;
  /** Tokens assumed for a generation that does not say (`max_tokens` absent). Default 256. */
  defaultTokens?: number;
};

export const DEFAULT_GPU_STALE_MS = 5_000;
export const DEFAULT_TOKENS = 256;

/** Fresh gauges of an instance that is not out of memory; undefined when stale or never scraped. */
export function freshGauges(s: InstanceState, now: number, staleMs = DEFAULT_GPU_STALE_MS): GpuGauges | undefined {
  const g = s.gpu;
  if (!g || g.memoryExhausted || now - g.scrapedAt > staleMs) return undefined;
  return g;
}

/**
 * Expected time (ms from now) for `s` to finish a request of `units` (tokens,
 * or one embeddings call): when it would start plus how long it runs.
 *
 * - Speed: `unitMs[class]` (the pool's low quantile of ms per unit, queueing
 *   mostly left out); unmeasured, the slowest measured instance's speed
 *   (pessimistic, so a new instance is not handed the longest requests blind).
 * - Start: the instance runs `slots` sequences at once (learnt from gauges
 *   read while it was full; unbounded until seen full). This balancer's own
 *   requests in flight are replayed in order on those slots, each running
 *   `tokens × speed` from when it was sent; requests the gauges show beyond
 *   ours (other balancers, or a full KV cache) queue ahead as average ones.
 * - Embeddings calls run one pass at a time: start after those in flight.
 */
export function expectedCompletionMs(s: InstanceState, cls: WorkClass, units: number, now: number, speed: number, g: GpuGauges | undefined, kvFull: number, defaultTokens: number): number {
  const own = (s.inflight ?? []).filter((w) => workClass(w.kind) === cls);
  // Requests in flight without a description (acquired without work) count as average ones sent now.
  const untracked = Math.max(0, s.outstanding - (s.inflight?.length ?? 0));
  if (cls === 'embeddings') return (own.length + untracked + units) * speed;
  // Until seen full, a full instance's batch is what it runs now.
  const slots = Math.max(1, s.slots ?? (g && (g.waiting > 0 || g.kvCacheUsage >= kvFull) ? g.running : Infinity));
  const foreign = g ? Math.max(0, g.running + g.waiting - (s.outstandingAtScrape ?? 0)) : 0;
  if (own.length + foreign + untracked < slots) return units * speed;
  const mean = own.length ? own.reduce((n, w) => n + (w.tokens ?? defaultTokens), 0) / own.length : defaultTokens;
  // Each slot's next free time; the instance serves first come, first served.
  const free: number[] = [];
  const run = (sent: number, tokens: number) => {
    if (free.length < slots) return void free.push(Math.max(now, sent + tokens * speed));
    let k = 0;
    for (let j = 1; j < free.length; j++) if (free[j] < free[k]) k = j;
    free[k] = Math.max(now, Math.max(free[k], sent) + tokens * speed);
  };
  for (let i = 0; i < foreign; i++) run(g!.scrapedAt, mean);
  for (let i = 0; i < untracked; i++) run(now, mean);
  for (const w of own) run(w.at, w.tokens ?? defaultTokens);
  const start = free.length < slots ? now : Math.min(...free);
  return start - now + units * speed;
}

/** The old headroom score (higher is better), kept to break ties: weight × (1 − kv) / ((1 + load) × (1 + waiting)). */
function headroom(weight: number, s: InstanceState, g: GpuGauges): number {
  const load = Math.max(g.running + g.waiting, s.outstanding);
  return (weight * (1 - Math.max(0, g.kvCacheUsage))) / ((1 + load) * (1 + Math.max(0, g.waiting)));
}

/**
 * Tiers: instances reporting memory exhaustion are never picked; instances
 * with fresh gauges are ranked by expected completion time
 * (`expectedCompletionMs`) divided by weight; near-equal times (2 %) go to
 * the most headroom, then the least outstanding; only when none has fresh
 * gauges do the others (stale, unscraped) take traffic, by least outstanding.
 */
export function gpu(opts: GpuOptions = {}): Picker {
  const staleMs = opts.staleMs ?? DEFAULT_GPU_STALE_MS;
  const kvFull = opts.kvFull ?? 0.98;
  const defaultTokens = opts.defaultTokens ?? DEFAULT_TOKENS;
  return {
    name: 'gpu',
    pick(candidates: readonly InstanceState[], ctx: PickContext) {
      const items = weighted(candidates, ctx, opts.slowStartMs ?? DEFAULT_SLOW_START_MS).filter((i) => !i.state.gpu?.memoryExhausted);
      const byOutstanding = (i: (typeof items)[number]) => (i.state.outstanding + 1) / i.weight;
      const cls = workClass(ctx.kind);
      const units = cls === 'embeddings' ? 1 : ctx.tokens !== undefined && ctx.tokens > 0 ? ctx.tokens : defaultTokens;
      let slowest = 0;
      for (const i of items) slowest = Math.max(slowest, i.state.unitMs?.[cls] ?? 0);
      const fresh = items.flatMap((i) => {
        const g = freshGauges(i.state, ctx.now, staleMs);
        if (!g) return [];
        const speed = Math.max(i.state.unitMs?.[cls] ?? (slowest || 1), 1e-6);
        const ect = expectedCompletionMs(i.state, cls, units, ctx.now, speed, g, kvFull, defaultTokens) / i.weight;
        return [{ ...i, ect, headroom: headroom(i.weight, i.state, g) }];
      });
      if (fresh.length === 0) return lowest(items, byOutstanding, ctx.random)?.state;
      let best = Infinity;
      for (const f of fresh) best = Math.min(best, f.ect);
      // "Equal" within 2 %: estimation noise should not decide alone.
      const near = fresh.filter((f) => f.ect <= best * 1.02 + 1e-9);
      let room = 0;
      for (const f of near) room = Math.max(room, f.headroom);
      const top = near.filter((f) => f.headroom >= room * 0.98);
      return lowest(top, byOutstanding, ctx.random)?.state;
    },
  };
}
