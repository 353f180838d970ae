import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { createSimServer, type SimServer, type SimServerOptions } from '../sim/server.js';
import { createPicker } from './pickers/create-picker.js';
import { createPool, type Pool } from './pool.js';
import { createProxy, type Proxy, type ProxyOptions } from './proxy.js';
import { createReadiness } from './readiness.js';
import { createBalancerServer } from './server.js';

// Real simulated GPU servers and a real balancer, over 127.0.0.1 sockets.

const BIG = 'llama-3-70b';
const SMALL = 'llama-3-8b';
const log = silentLogger();
const cleanup: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** i0 serves BIG, i1 serves SMALL; active readiness checks every 30 ms. `now`: the pool's and the proxy's clock. */
async function setup(o: { proxy?: Partial<ProxyOptions>; big?: Partial<SimServerOptions>; now?: () => number } = {}): Promise<{ big: SimServer; small: SimServer; pool: Pool; proxy: Proxy; base: string }> {
  const big = createSimServer({ log, model: BIG, ttftMs: 5, tokensPerSecond: 1000, ...o.big });
  const small = createSimServer({ log, model: SMALL, ttftMs: 5, tokensPerSecond: 1000 });
  cleanup.push(() => big.stop(), () => small.stop());
  const [pb, ps] = [(await big.start()).port, (await small.start()).port];
  const kinds = ['chat', 'completion', 'embeddings'] as const;
  const pool = createPool({
    instances: [
      { id: 'i0', url: `http://127.0.0.1:${pb}`, weight: 1, models: [BIG], kinds: [...kinds] },
      { id: 'i1', url: `http://127.0.0.1:${ps}`, weight: 1, models: [SMALL], kinds: [...kinds] },
    ],
    picker: createPicker('round-robin'),
    slowStartMs: 0,
    now: o.now,
  });
  const proxy = createProxy({ pool, log, now: o.now, ...o.proxy });
  cleanup.push(() => proxy.close());
  // The default 2 s deadline per check: a loaded machine must not make a healthy instance look hung.
  const readiness = createReadiness({ pool, log, intervalMs: 30, onChange: () => proxy.wake() });
  cleanup.push(async () => readiness.stop());
  readiness.start();
  const server = createBalancerServer({ proxy, log });
  cleanup.push(() => server.stop());
  const { port } = await server.start();
  await until(() => pool.states().every((s) => s.ready));
  return { big, small, pool, proxy, base: `http://127.0.0.1:${port}` };
}

/** Waits for what must come; the deadline only keeps a broken test from hanging until vitest's own. */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}

const chat = (base: string, model: string, extra: object = {}) =>
  fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 3, ...extra }),
  });

describe('fallbacks (real sims)', () => {
  it('serves a crashed model from its fallback pool, rewriting the model and saying so in x-arus-fallback', async () => {
    const { big, pool, proxy, base } = await setup({ proxy: { fallbacks: { [BIG]: SMALL } } });
    // healthy: no fallback, no header
    const ok = await chat(base, BIG);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-arus-instance')).toBe('i0');
    expect(ok.headers.get('x-arus-fallback')).toBeNull();
    expect(((await ok.json()) as { model: string }).model).toBe(BIG);

    await big.setFault({ kind: 'crash' });
    await until(() => !pool.states()[0].ready);
    const res = await chat(base, BIG);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-arus-fallback')).toBe(`${BIG} -> ${SMALL}`);
    expect(res.headers.get('x-arus-instance')).toBe('i1');
    expect(((await res.json()) as { model: string }).model).toBe(SMALL);

    // a stream too
    const stream = await chat(base, BIG, { stream: true });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('x-arus-fallback')).toBe(`${BIG} -> ${SMALL}`);
    expect(await stream.text()).toContain('data: [DONE]');

    // the small model itself is served as usual, unmarked
    const direct = await chat(base, SMALL);
    expect(direct.headers.get('x-arus-fallback')).toBeNull();
    await direct.arrayBuffer();
    expect(proxy.stats().fallbacks).toBe(2);

    // back up: back to its own pool, unmarked
    await big.setFault({ kind: 'none' });
    await until(() => pool.states()[0].ready);
    const again = await chat(base, BIG);
    expect(again.headers.get('x-arus-instance')).toBe('i0');
    expect(again.headers.get('x-arus-fallback')).toBeNull();
    await again.arrayBuffer();
  });

  it('without a fallback the 503 stays', async () => {
    const { big, pool, base } = await setup();
    await big.setFault({ kind: 'crash' });
    await until(() => !pool.states()[0].ready);
    const res = await chat(base, BIG);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(res.headers.get('x-arus-fallback')).toBeNull();
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('no_ready_instance');
  });

  it('answers 503 when the fallback pool is down too, and 404 for an unknown model whatever the fallbacks', async () => {
    const { big, small, pool, base } = await setup({ proxy: { fallbacks: { [BIG]: SMALL, 'no-such-model': SMALL } } });
    await big.setFault({ kind: 'crash' });
    await small.setFault({ kind: 'crash' });
    await until(() => pool.states().every((s) => !s.ready));
    const res = await chat(base, BIG);
    expect(res.status).toBe(503);
    expect(res.headers.get('x-arus-fallback')).toBeNull();
    await res.arrayBuffer();
    const unknown = await chat(base, 'no-such-model');
    expect(unknown.status).toBe(404);
    await unknown.arrayBuffer();
  });

  it('serves from the fallback when the model is ejected', async () => {
    let clock = 1_000_000;
    const { pool, base } = await setup({ proxy: { fallbacks: { [BIG]: SMALL } }, now: () => clock });
    pool.states()[0].ejectedUntil = clock + 1000;
    const res = await chat(base, BIG);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-arus-fallback')).toBe(`${BIG} -> ${SMALL}`);
    await res.arrayBuffer();
    clock += 1000; // the ejection is over: back to its own pool
    const back = await chat(base, BIG);
    expect(back.headers.get('x-arus-instance')).toBe('i0');
    expect(back.headers.get('x-arus-fallback')).toBeNull();
    await back.arrayBuffer();
  });

  it('serves from the fallback when the model pool is full and the queue cannot take more', async () => {
    const { base } = await setup({
      big: { tokensPerSecond: 20 },
      proxy: { fallbacks: { [BIG]: SMALL }, maxConcurrentPerInstance: 1, maxQueue: 0 },
    });
    // A stream of 100 s on i0 holds its only slot; its headers say it has it.
    const first = await chat(base, BIG, { max_tokens: 2000, stream: true });
    expect(first.headers.get('x-arus-instance')).toBe('i0');
    expect(first.headers.get('x-arus-fallback')).toBeNull();
    const res = await chat(base, BIG);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-arus-fallback')).toBe(`${BIG} -> ${SMALL}`);
    await res.arrayBuffer();
    await first.body!.cancel();
  });

  it('works with batched embeddings: the whole batch goes to the fallback, each caller marked', async () => {
    // A minute's window and room for exactly the three: one batch, whenever each caller arrives.
    const { big, pool, proxy, base } = await setup({ proxy: { fallbacks: { [BIG]: SMALL }, batching: { embeddings: { windowMs: 60_000, maxBatch: 3 } } } });
    await big.setFault({ kind: 'crash' });
    await until(() => !pool.states()[0].ready);
    const answers = await Promise.all(
      ['a', 'b', 'c'].map((input) =>
        fetch(`${base}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: BIG, input }) }),
      ),
    );
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.headers.get('x-arus-fallback')).toBe(`${BIG} -> ${SMALL}`);
      const body = (await a.json()) as { model: string; data: unknown[] };
      expect(body.model).toBe(SMALL);
      expect(body.data).toHaveLength(1);
    }
    expect(proxy.stats()).toMatchObject({ batches: 1, batchedCalls: 3 });
  });
});
