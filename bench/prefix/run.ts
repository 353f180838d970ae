// One workload against one contender: the seeded schedule sent on time
// (open loop; a conversation's next turn follows its answer after the think
// time), the warm-up left out of the figures, the measured window's requests
// drained, and the sims' own prefix-cache counters read at both ends.
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { request, type Pool } from 'undici';
import { streamChat, type Sample } from './client.js';
import { DRAIN_SECONDS, VERBOSE } from './settings.js';
import type { Arrival, Conversation, Message, Workload } from './workloads.js';

/** Priming requests in flight at once: as many as the fleet has instances. */
const PRIME_CONCURRENCY = 4;

/** Where a request of `group` goes: the contender's one address, or (the oracle) the group's own instance, named. */
export type Route = (group: string) => { pool: Pool; instance?: string };
type Timed = Sample & { sentAt: number };
export type Counters = { queries: number; hits: number };
type Stats = { p50: number; p99: number };

export type RunResult = {
  /** Requests sent inside the measured window, and those answered. */
  sent: number;
  answered: number;
  ttft: Stats;
  e2e: Stats;
  /** Answered requests per second, from the window's start to the later of its end and the last answer. */
  throughput: number;
  /** Measured requests that failed (any status but 200, a broken stream) or were still unanswered after the drain. */
  errors: number;
  unfinished: number;
  statuses: Record<string, number>;
  /** Answered requests per instance, as the proxy (or the oracle) named it. */
  spread: Record<string, number>;
  /** Δ vllm:prefix_cache_hits_total / Δ vllm:prefix_cache_queries_total over the window, summed over the sims; NaN when they do not count. */
  hitRate: number;
  /** The same from the answers' usage.prompt_tokens_details.cached_tokens; NaN when absent. */
  clientHitRate: number;
  /** Prompt tokens the sims computed (Δ queries − Δ hits) per answered request: what the offered rates are calibrated on. */
  uncachedPerRequest: number;
};

const pct = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)] : NaN);
const stats = (xs: number[]): Stats => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: pct(s, 0.5), p99: pct(s, 0.99) };
};

/** The prefix-cache counters of every sim, summed; undefined when a sim does not export them. */
export async function scrapeCounters(ports: number[]): Promise<Counters | undefined> {
  let queries = 0;
  let hits = 0;
  for (const port of ports) {
    const r = await request(`http://127.0.0.1:${port}/metrics`);
    const text = await r.body.text();
    const value = (name: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
    };
    const q = value('vllm:prefix_cache_queries_total');
    const h = value('vllm:prefix_cache_hits_total');
    if (q === undefined || h === undefined) return undefined;
    queries += q;
    hits += h;
  }
  return { queries, hits };
}

/** Runs `w` through `route`; the first `warmupSeconds` of it are warm-up. `simPorts` are read for the cache counters. */
export async function runWorkload(w: Workload, route: Route, simPorts: number[], warmupSeconds: number): Promise<RunResult> {
  const windowStart = warmupSeconds * 1000;
  const windowEnd = w.seconds * 1000;
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  const measured: Timed[] = [];
  const inflight = new Set<Promise<unknown>>();
  let measuredInflight = 0;
  let lastDone = 0;
  await primeWith(w.prime, route, abort.signal);
  const t0 = performance.now();
  const at = () => performance.now() - t0;
  const send = async (group: string, messages: Message[], maxTokens: number, session?: string): Promise<Sample> => {
    const sentAt = at();
    const counted = sentAt >= windowStart && sentAt < windowEnd;
    if (counted) measuredInflight++;
    const to = route(group);
    const s = await streamChat(to.pool, messages, maxTokens, session, abort.signal);
    s.instance ??= to.instance;
    if (counted) {
      measuredInflight--;
      if (!abort.signal.aborted || s.ok) measured.push({ ...s, sentAt });
      if (s.ok) lastDone = Math.max(lastDone, at());
    }
    return s;
  };
  const track = (p: Promise<unknown>) => {
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };
  let before: Promise<Counters | undefined> | undefined;
  const startCounters = setTimeout(() => {
    before = scrapeCounters(simPorts);
  }, windowStart);

  if (w.name === 'multi-turn') for (const c of w.conversations) track(converse(c, t0, windowEnd, send, abort.signal));
  else for (const a of w.arrivals) {
    const wait = t0 + a.at - performance.now();
    if (wait > 1) await sleep(wait);
    track(send(a.group, a.messages, a.maxTokens));
  }
  while (at() < windowEnd) await sleep(Math.min(100, windowEnd - at()));
  const deadline = performance.now() + DRAIN_SECONDS * 1000;
  while (measuredInflight > 0 && performance.now() < deadline) await sleep(50);
  const unfinished = measuredInflight;
  const after = await scrapeCounters(simPorts);
  clearTimeout(startCounters);
  const b = await before;
  abort.abort();
  await Promise.allSettled([...inflight]);
  return summarize(measured, unfinished, { windowStart, windowEnd, lastDone }, b && after ? { queries: after.queries - b.queries, hits: after.hits - b.hits } : undefined);
}

/** Sends `prime`, PRIME_CONCURRENCY at a time, and waits for every answer. */
async function primeWith(prime: Arrival[], route: Route, signal: AbortSignal): Promise<void> {
  const queue = [...prime];
  const worker = async () => {
    for (let a = queue.shift(); a; a = queue.shift()) await streamChat(route(a.group).pool, a.messages, a.maxTokens, undefined, signal);
  };
  await Promise.all(Array.from({ length: PRIME_CONCURRENCY }, worker));
}

/** One conversation: each turn resends the whole history, `thinkMs` after the last answer; none is sent after the window. */
async function converse(c: Conversation, t0: number, windowEnd: number, send: (group: string, m: Message[], n: number, session?: string) => Promise<Sample>, signal: AbortSignal) {
  try {
    await sleep(t0 + c.at - performance.now(), undefined, { signal });
    const history: Message[] = [{ role: 'system', content: c.system }];
    for (const turn of c.turns) {
      if (performance.now() - t0 >= windowEnd) return;
      history.push({ role: 'user', content: turn.user });
      const s = await send(c.group, history, turn.maxTokens, c.id);
      if (!s.ok) return;
      history.push({ role: 'assistant', content: s.content });
      await sleep(turn.thinkMs, undefined, { signal });
    }
  } catch {
    // aborted at the end of the run
  }
}

function summarize(samples: Timed[], unfinished: number, t: { windowStart: number; windowEnd: number; lastDone: number }, delta: Counters | undefined): RunResult {
  const ok = samples.filter((s) => s.ok);
  const statuses: Record<string, number> = {};
  for (const s of samples) if (!s.ok) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
  if (unfinished) statuses.unfinished = unfinished;
  const spread: Record<string, number> = {};
  for (const s of ok) if (s.instance) spread[s.instance] = (spread[s.instance] ?? 0) + 1;
  if (VERBOSE) {
    const tail = [...ok].sort((a, b) => b.ttftMs - a.ttftMs).slice(0, 5);
    process.stderr.write(`  slowest TTFT: ${tail.map((x) => `${Math.round(x.ttftMs)} ms on ${x.instance} (${x.cachedTokens}/${x.promptTokens} cached)`).join(', ')}\n`);
  }
  const withUsage = ok.filter((s) => s.promptTokens !== undefined && s.cachedTokens !== undefined);
  const prompt = withUsage.reduce((n, s) => n + (s.promptTokens ?? 0), 0);
  return {
    sent: samples.length + unfinished,
    answered: ok.length,
    ttft: stats(ok.map((s) => s.ttftMs)),
    e2e: stats(ok.map((s) => s.e2eMs)),
    throughput: ok.length / ((Math.max(t.windowEnd, t.lastDone) - t.windowStart) / 1000),
    errors: samples.length - ok.length + unfinished,
    unfinished,
    statuses,
    spread,
    hitRate: delta && delta.queries > 0 ? delta.hits / delta.queries : NaN,
    uncachedPerRequest: delta && ok.length ? (delta.queries - delta.hits) / ok.length : NaN,
    clientHitRate: prompt > 0 ? withUsage.reduce((n, s) => n + (s.cachedTokens ?? 0), 0) / prompt : NaN,
  };
}

