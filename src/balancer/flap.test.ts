// The pool's evidence under faults, through a whole balancer (startBalancer:
// pool, outlier detection, readiness, proxy, server) in front of real sims on
// loopback: 10 % random errors take nothing out, a crashed instance is out
// within the failover budget while the other serves, and ejection never takes
// more than its share of the pool, even when every instance fails.
import { afterEach, describe, expect, it } from 'vitest';
import { balancerSchema, type BalancerDoc } from '../config/schema.js';
import { silentLogger } from '../log.js';
import { createSimServer, type SimServer } from '../sim/server.js';
import type { Pool } from './pool.js';
import { isEjected, maxEjected } from './pool/outliers.js';
import { startBalancer } from './role.js';

const log = silentLogger();
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function fleet(n: number, doc: Partial<BalancerDoc> = {}) {
  const sims: SimServer[] = [];
  const instances = [];
  for (let i = 0; i < n; i++) {
    const sim = createSimServer({ log, ttftMs: 5, tokensPerSecond: 1000 });
    const { port } = await sim.start();
    cleanup.push(() => sim.stop());
    sims.push(sim);
    instances.push({ id: `i${i}`, url: `http://127.0.0.1:${port}`, models: ['llama-3-8b'] });
  }
  const balancer = await startBalancer({ region: 'jkt', id: 'b', doc: balancerSchema.parse({ listen: '127.0.0.1:0', strategy: 'least-outstanding', slowStartMs: 0, instances, ...doc }), log });
  cleanup.push(() => balancer.stop());
  expect(balancer.pool.states().every((s) => s.ready)).toBe(true);
  return { sims, balancer, url: `http://127.0.0.1:${balancer.port}` };
}

/** `clients` loops posting small chats until `stop()`; the answers' statuses by count. */
function traffic(url: string, clients: number) {
  const statuses = new Map<number, number>();
  let running = true;
  const loop = async () => {
    while (running) {
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama-3-8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }),
      }).catch(() => undefined);
      await res?.arrayBuffer();
      const status = res?.status ?? 0;
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  const loops = Array.from({ length: clients }, loop);
  return {
    statuses,
    async stop() {
      running = false;
      await Promise.all(loops);
      return statuses;
    },
  };
}

type Sample = { t: number; ready: boolean[]; ejected: boolean[] };

/** The pool's state every 10 ms until `stop()`. */
function sampler(pool: Pick<Pool, 'states'>) {
  const samples: Sample[] = [];
  const t0 = performance.now();
  const take = () => {
    const now = Date.now();
    const states = pool.states();
    samples.push({ t: performance.now() - t0, ready: states.map((s) => s.ready), ejected: states.map((s) => isEjected(s, now)) });
  };
  take();
  const timer = setInterval(take, 10);
  return {
    samples,
    stop() {
      clearInterval(timer);
      take();
      return samples;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Two instances under 4 clients' traffic; `kind` set on the second after
 * 0.5 s. How long it stayed ready, then what the clients got and what the
 * pool looked like every 10 ms while it went out and `settleMs` after.
 */
async function faultOneOfTwo(kind: 'crash' | 'error', settleMs: number) {
  const { sims, balancer, url } = await fleet(2);
  const load = traffic(url, 4);
  await sleep(500);
  const watch = sampler(balancer.pool);
  const t0 = performance.now();
  await sims[1].setFault({ kind });
  while (balancer.pool.states()[1].ready && performance.now() - t0 < 5000) await sleep(1);
  const outAfter = performance.now() - t0;
  await sleep(settleMs);
  const statuses = await load.stop();
  return { outAfter, statuses, samples: watch.stop(), balancer };
}

describe('no flapping on random errors', () => {
  it('4 instances at 10 % random errors for 20 s: none turns not ready, at most half ejected at once, never all', { timeout: 60_000 }, async () => {
    const { sims, balancer, url } = await fleet(4);
    for (const s of sims) await s.setFault({ kind: 'error', rate: 0.1 });
    const watch = sampler(balancer.pool);
    const load = traffic(url, 8);
    await sleep(20_000);
    const statuses = await load.stop();
    const samples = watch.stop();

    const total = [...statuses.values()].reduce((a, b) => a + b, 0);
    const errors = statuses.get(500) ?? 0;
    // The traffic was real and saw the errors (10 % of what the instances answered; a request is never retried on a 500).
    expect(total).toBeGreaterThan(2000);
    expect(errors / total).toBeGreaterThan(0.05);
    expect(errors / total).toBeLessThan(0.15);
    expect([...statuses.keys()].sort()).toEqual([200, 500]);
    // Sampled every 10 ms (gaps only as long as the event loop is busy).
    expect(samples.length).toBeGreaterThan(1000);
    const notReady = samples.filter((s) => s.ready.some((r) => !r));
    expect(notReady).toEqual([]);
    const mostEjected = Math.max(...samples.map((s) => s.ejected.filter(Boolean).length));
    expect(mostEjected).toBeLessThanOrEqual(maxEjected(4, 50));
    expect(samples.every((s) => s.ejected.some((e) => !e))).toBe(true);
  });
});

describe('failover inside the balancer', () => {
  it('one of two crashed: out within 0.8 s, and every request is answered by the other', { timeout: 30_000 }, async () => {
    const { outAfter, statuses, samples, balancer } = await faultOneOfTwo('crash', 1500);
    expect(outAfter).toBeLessThan(800);
    expect([...statuses.keys()]).toEqual([200]); // refused or reset before an answer: retried on i0
    expect(samples.every((s) => s.ready[0] && !s.ejected[0])).toBe(true);
    expect(balancer.pool.states()[1].ready).toBe(false);
  });

  it('one of two answering only errors: out within half a second, the other never', { timeout: 30_000 }, async () => {
    const { outAfter, samples } = await faultOneOfTwo('error', 500);
    expect(outAfter).toBeLessThan(500);
    expect(samples.every((s) => s.ready[0] && !s.ejected[0])).toBe(true);
  });
});

describe('ejection keeps its share', () => {
  it.each([
    [undefined, 2],
    [25, 1],
  ])('every instance failing, maxEjectionPercent %s: at most %i of 4 ejected at any moment, and the cap is reached', { timeout: 30_000 }, async (percent, allowed) => {
    const { sims, balancer, url } = await fleet(4, percent === undefined ? {} : { outlier: { maxEjectionPercent: percent } });
    const load = traffic(url, 8);
    await sleep(300);
    const watch = sampler(balancer.pool);
    await Promise.all(sims.map((s) => s.setFault({ kind: 'error' })));
    await sleep(1500);
    await load.stop();
    const samples = watch.stop();
    const counts = samples.map((s) => s.ejected.filter(Boolean).length);
    expect(Math.max(...counts)).toBe(allowed);
    expect(samples.every((s) => s.ejected.filter((e) => !e).length >= 4 - allowed)).toBe(true);
    // And readiness, not ejection, takes a pool that fails as a whole out.
    expect(balancer.pool.states().every((s) => !s.ready)).toBe(true);
  });
});
