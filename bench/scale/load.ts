// The load: a seeded open-loop Poisson schedule at the daily-shape rate r(t),
// sent on time to every target at once whatever the answers, non-streamed
// chat completions of MAX_TOKENS tokens; each answer's latency, by start time.
import { setMaxListeners } from 'node:events';
import { Pool } from 'undici';
import { seededRandom } from '../../src/steer/steer.js';
import { sleep } from '../common.js';
import { CLIENT_TIMEOUT_MS, DRAIN_S, DURATION_S, MAX_TOKENS, MODEL, rateAt, SPIKE_END_MS, SPIKE_START_MS } from './settings.js';

/** One request: its start (ms after t0), latency, whether it succeeded (2xx), its status (0: no answer). */
export type Sample = { start: number; ms: number; ok: boolean; status: number };
export type RunResult = { samples: Sample[]; unfinished: number; lastDoneS: number };

/**
 * Arrival times (ms) over the whole run: a Poisson process per phase at that
 * phase's rate (exponential gaps; a gap that crosses a phase boundary is
 * drawn again from the boundary, which memorylessness makes exact).
 */
export function schedule(seed: number): number[] {
  const random = seededRandom(seed);
  const bounds = [0, SPIKE_START_MS, SPIKE_END_MS, DURATION_S * 1000];
  const out: number[] = [];
  for (let p = 0; p + 1 < bounds.length; p++) {
    const rate = rateAt(bounds[p]) / 1000;
    for (let t = bounds[p] - Math.log(1 - random()) / rate; t < bounds[p + 1]; t += -Math.log(1 - random()) / rate) out.push(t);
  }
  return out;
}

const BODY = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'tell me a story about a river' }], max_tokens: MAX_TOKENS });

/**
 * Sends every arrival to each of `ports` (the same instant for all) from
 * `t0` (performance.now()), then waits up to DRAIN_S for the last answers;
 * requests still open then are failures (`unfinished`).
 */
export async function run(ports: number[], arrivals: number[], t0: number): Promise<RunResult[]> {
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  const targets = ports.map((port) => ({
    pool: new Pool(`http://127.0.0.1:${port}`, { connections: 8192, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: CLIENT_TIMEOUT_MS, bodyTimeout: CLIENT_TIMEOUT_MS }),
    samples: [] as Sample[],
    inflight: new Set<Promise<void>>(),
    lastDone: t0,
  }));
  const fire = (t: (typeof targets)[number]) => {
    const begin = performance.now();
    const sample = (ok: boolean, status: number) => {
      const end = performance.now();
      t.lastDone = Math.max(t.lastDone, end);
      t.samples.push({ start: begin - t0, ms: end - begin, ok, status });
    };
    const p = t.pool
      .request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: BODY, signal: abort.signal })
      .then(async (r) => {
        await r.body.dump({ limit: 1 << 20 });
        sample(r.statusCode >= 200 && r.statusCode < 300, r.statusCode);
      })
      .catch(() => {
        if (!abort.signal.aborted) sample(false, 0);
      })
      .finally(() => t.inflight.delete(p));
    t.inflight.add(p);
  };
  for (const at of arrivals) {
    const wait = t0 + at - performance.now();
    if (wait > 1) await sleep(wait);
    for (const t of targets) fire(t);
  }
  const deadline = performance.now() + DRAIN_S * 1000;
  while (targets.some((t) => t.inflight.size) && performance.now() < deadline) await sleep(50);
  const unfinished = targets.map((t) => t.inflight.size);
  abort.abort();
  await Promise.allSettled(targets.flatMap((t) => [...t.inflight]));
  await Promise.all(targets.map((t) => t.pool.destroy()));
  return targets.map((t, i) => ({ samples: t.samples.sort((a, b) => a.start - b.start), unfinished: unfinished[i], lastDoneS: (t.lastDone - t0) / 1000 }));
}
