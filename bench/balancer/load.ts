// The load generators: the mixed workload (a seeded open-loop schedule of
// generations and embeddings), the closed-loop overhead run and the
// closed-loop batching run, each returning the latencies it saw.
import { setMaxListeners } from 'node:events';
import { Pool } from 'undici';
import { seededRandom } from '../../src/steer/steer.js';
import { sleep } from '../common.js';
import { CONCURRENCY, DRAIN_SECONDS, EMBED_CONCURRENCY, EMBED_MODEL, EMBED_RATE, GEN_RATE, MAX_TOKENS, MIN_TOKENS, MODEL } from './settings.js';

export type Arrival = { at: number; kind: 'chat' | 'embed'; maxTokens: number };

/** Seeded Poisson arrivals of both kinds over `seconds`, sorted by time (ms). */
export function schedule(seconds: number, seed = 2026): Arrival[] {
  const random = seededRandom(seed);
  const out: Arrival[] = [];
  const poisson = (rate: number, kind: Arrival['kind']) => {
    for (let t = -Math.log(1 - random()) / rate; t < seconds; t += -Math.log(1 - random()) / rate)
      out.push({ at: t * 1000, kind, maxTokens: kind === 'chat' ? MIN_TOKENS + Math.floor(random() * (MAX_TOKENS - MIN_TOKENS + 1)) : 0 });
  };
  poisson(GEN_RATE, 'chat');
  poisson(EMBED_RATE, 'embed');
  return out.sort((a, b) => a.at - b.at);
}

type Sample = { kind: Arrival['kind']; ms: number; ok: boolean; status: number; instance?: string; at: number; maxTokens: number };
export type MixedResult = { all: Stats; chat: Stats; embed: Stats; completedPerSec: number; errors: number; unfinished: number; statuses: Record<string, number>; spread: Record<string, number> };
type Stats = { n: number; p50: number; p99: number };
/** What a closed-loop run measured. */
export type LoopResult = { rps: number; p50: number; p99: number; errors: number };

const pct = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)] : NaN);
const stats = (xs: number[]): Stats => {
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 0.5), p99: pct(s, 0.99) };
};

/** Sends `arrivals` to the balancer on `port` on time, whatever the completions, and waits (at most DRAIN_SECONDS) for the last answers. */
export async function mixedRun(port: number, arrivals: Arrival[]): Promise<MixedResult> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 2048, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 });
  const samples: Sample[] = [];
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  const t0 = performance.now();
  let lastDone = t0;
  const inflight = new Set<Promise<void>>();
  const fire = (a: Arrival) => {
    const body =
      a.kind === 'chat'
        ? { model: MODEL, messages: [{ role: 'user', content: 'tell me a story about a river' }], max_tokens: a.maxTokens }
        : { model: MODEL, input: `embed this sentence number ${Math.floor(a.at)}` };
    const start = performance.now();
    const p = pool
      .request({ method: 'POST', path: a.kind === 'chat' ? '/v1/chat/completions' : '/v1/embeddings', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: abort.signal })
      .then(async (r) => {
        await r.body.dump({ limit: 1 << 20 });
        const end = performance.now();
        lastDone = Math.max(lastDone, end);
        const inst = r.headers['x-arus-instance'];
        samples.push({ kind: a.kind, ms: end - start, ok: r.statusCode === 200, status: r.statusCode, instance: typeof inst === 'string' ? inst : undefined, at: a.at, maxTokens: a.maxTokens });
      })
      .catch(() => {
        if (!abort.signal.aborted) samples.push({ kind: a.kind, ms: performance.now() - start, ok: false, status: 0, at: a.at, maxTokens: a.maxTokens });
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };
  for (const a of arrivals) {
    const wait = t0 + a.at - performance.now();
    if (wait > 1) await sleep(wait);
    fire(a);
  }
  const deadline = performance.now() + DRAIN_SECONDS * 1000;
  while (inflight.size && performance.now() < deadline) await sleep(50);
  const unfinished = inflight.size;
  abort.abort();
  await Promise.allSettled([...inflight]);
  await pool.destroy();
  return summarize(samples, unfinished, (lastDone - t0) / 1000);
}

/** Latencies of the answered requests, by kind; errors, statuses and generations per instance. */
function summarize(samples: Sample[], unfinished: number, seconds: number): MixedResult {
  const ok = samples.filter((s) => s.ok);
  const statuses: Record<string, number> = {};
  for (const s of samples) if (!s.ok) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
  if (process.env.BENCH_VERBOSE)
    for (const x of [...ok].sort((a, b) => b.ms - a.ms).slice(0, 6)) console.log(`    slow: ${x.kind} at ${(x.at / 1000).toFixed(1)} s, ${x.maxTokens} tokens on ${x.instance ?? '?'}: ${x.ms.toFixed(0)} ms`);
  const spread: Record<string, number> = {};
  for (const s of ok) if (s.kind === 'chat' && s.instance) spread[s.instance] = (spread[s.instance] ?? 0) + 1;
  return {
    all: stats(ok.map((s) => s.ms)),
    chat: stats(ok.filter((s) => s.kind === 'chat').map((s) => s.ms)),
    embed: stats(ok.filter((s) => s.kind === 'embed').map((s) => s.ms)),
    completedPerSec: ok.length / seconds,
    errors: samples.length - ok.length + unfinished,
    unfinished,
    statuses,
    spread,
  };
}

/** Closed loop: CONCURRENCY clients, each sending its next request when the last one is answered. */
export async function overheadRun(port: number, seconds: number): Promise<LoopResult> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONCURRENCY, pipelining: 1, keepAliveTimeout: 60_000 });
  const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 });
  const lat: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const s = performance.now();
        try {
          const r = await pool.request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body });
          await r.body.dump();
          if (r.statusCode === 200) lat.push(performance.now() - s);
          else errors++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  await pool.destroy();
  const s = stats(lat);
  return { rps: lat.length / elapsed, p50: s.p50, p99: s.p99, errors };
}

/** Closed loop: EMBED_CONCURRENCY clients, each sending its next single-input embeddings call when the last one is answered. */
export async function embedRun(port: number, seconds: number): Promise<LoopResult> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: EMBED_CONCURRENCY, pipelining: 1, keepAliveTimeout: 60_000 });
  const lat: number[] = [];
  let errors = 0;
  let n = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: EMBED_CONCURRENCY }, async (_, c) => {
      while (performance.now() < end) {
        const body = JSON.stringify({ model: EMBED_MODEL, input: `sentence ${c}-${n++}` });
        const s = performance.now();
        try {
          const r = await pool.request({ method: 'POST', path: '/v1/embeddings', headers: { 'content-type': 'application/json' }, body });
          const text = await r.body.text();
          if (r.statusCode === 200 && (JSON.parse(text) as { data: unknown[] }).data.length === 1) lat.push(performance.now() - s);
          else errors++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  await pool.destroy();
  const st = stats(lat);
  return { rps: lat.length / elapsed, p50: st.p50, p99: st.p99, errors };
}
