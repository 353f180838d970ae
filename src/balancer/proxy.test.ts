import { setTimeout as sleep } from 'node:timers/promises';
import { readSse } from '../sim/sse.case.js';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { createSimServer, type SimServer, type SimServerOptions } from '../sim/server.js';
import { createPicker } from './pickers/create-picker.js';
import { createPool, type Pool, type PoolOptions } from './pool.js';
import { createProxy, type ProxyOptions } from './proxy.js';
import { createRetryBudget } from './proxy/retries.js';
import { createReadiness, type Readiness } from './readiness.js';
import { createBalancerServer, type BalancerServer } from './server.js';
import type { Instance } from './types.js';

// Black-box: real simulated GPU servers and a real balancer, over 127.0.0.1 sockets.

const MODEL = 'llama-3-8b';
const log = silentLogger();
const cleanup: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

type Setup = {
  sims: SimServer[];
  simBases: string[];
  pool: Pool;
  balancer: BalancerServer;
  base: string;
  readiness?: Readiness;
};

async function setup(o: {
  sims: Partial<SimServerOptions>[];
  proxy?: Partial<ProxyOptions>;
  pool?: Partial<PoolOptions>;
  models?: string[][];
  /** Run active readiness checks instead of marking every instance ready. */
  readiness?: { intervalMs: number };
}): Promise<Setup> {
  const sims: SimServer[] = [];
  const instances: Instance[] = [];
  for (const [i, so] of o.sims.entries()) {
    const s = createSimServer({ log, ttftMs: 5, tokensPerSecond: 1000, ...so });
    cleanup.push(() => s.stop());
    const { port } = await s.start();
    sims.push(s);
    instances.push({ id: `i${i}`, url: `http://127.0.0.1:${port}`, weight: 1, models: o.models?.[i] ?? [MODEL], kinds: ['chat', 'completion', 'embeddings'] });
  }
  const pool = createPool({ instances, picker: createPicker('round-robin'), slowStartMs: 0, ...o.pool });
  const proxy = createProxy({ pool, log, ...o.proxy });
  cleanup.push(() => proxy.close());
  let readiness: Readiness | undefined;
  if (o.readiness) {
    readiness = createReadiness({ pool, log, intervalMs: o.readiness.intervalMs, onChange: () => proxy.wake() });
    cleanup.push(() => readiness!.stop());
    readiness.start();
  } else for (const i of instances) pool.setReady(i.id, true);
  const balancer = createBalancerServer({ proxy, log });
  cleanup.push(() => balancer.stop());
  const { port } = await balancer.start();
  return { sims, simBases: instances.map((i) => i.url), pool, balancer, base: `http://127.0.0.1:${port}`, readiness };
}

const post = (url: string, body: unknown, signal?: AbortSignal) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });
const chat = (extra: object = {}) => ({ model: MODEL, messages: [{ role: 'user', content: 'hello' }], max_tokens: 3, ...extra });

async function gauge(simBase: string, name: string): Promise<number> {
  const text = await (await fetch(`${simBase}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`));
  if (!line) throw new Error(`no ${name}`);
  return Number(line.split(' ').at(-1));
}

async function until(cond: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}

function tally(ids: (string | null)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of ids) out[id ?? 'none'] = (out[id ?? 'none'] ?? 0) + 1;
  return out;
}

describe('balancer proxy: forwarding', () => {
  it('spreads requests round-robin over the instances and names the instance in a header', async () => {
    const { base } = await setup({ sims: [{}, {}, {}] });
    const ids: (string | null)[] = [];
    for (let i = 0; i < 9; i++) {
      const res = await post(`${base}/v1/chat/completions`, chat());
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(body.object).toBe('chat.completion');
      expect(body.choices[0].message.content).toBe('The model answers');
      ids.push(res.headers.get('x-arus-instance'));
    }
    expect(tally(ids)).toEqual({ i0: 3, i1: 3, i2: 3 });
  });

  it('forwards completions and embeddings as well', async () => {
    const { base } = await setup({ sims: [{}] });
    const c = await post(`${base}/v1/completions`, { model: MODEL, prompt: 'once', max_tokens: 2 });
    expect(c.status).toBe(200);
    expect((await c.json()).choices[0].text).toBe('The model');
    const e = await post(`${base}/v1/embeddings`, { model: MODEL, input: ['a', 'b'] });
    expect(e.status).toBe(200);
    expect((await e.json()).data).toHaveLength(2);
  });

  it('streams SSE incrementally, chunk by chunk', async () => {
    const { base } = await setup({ sims: [{ ttftMs: 20, tokensPerSecond: 20 }] });
    // Warm the path (first connection, lazy imports): a late first token makes the sim catch up in a burst.
    await (await post(`${base}/v1/chat/completions`, chat({ max_tokens: 1, stream: true }))).text();
    const t0 = performance.now();
    const res = await post(`${base}/v1/chat/completions`, chat({ max_tokens: 5, stream: true }));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('x-arus-instance')).toBe('i0');
    const events = await readSse(res, t0);
    expect(events.at(-1)!.data).toBe('[DONE]');
    expect(events).toHaveLength(7); // 5 tokens, the closing chunk, [DONE]
    // Tokens are 50 ms apart at the sim (200 ms first to fifth); a buffering proxy would deliver them all at once.
    expect(events[4].at - events[0].at).toBeGreaterThanOrEqual(120);
  });

  it('lists the models of ready instances and answers its own /health', async () => {
    const { base, pool } = await setup({ sims: [{}, { model: 'bge-small' }], models: [[MODEL], ['bge-small']] });
    const ids = async () => ((await (await fetch(`${base}/v1/models`)).json()).data as { id: string }[]).map((m) => m.id);
    expect(await ids()).toEqual(['bge-small', MODEL]);
    pool.setReady('i1', false);
    expect(await ids()).toEqual([MODEL]);
    expect((await fetch(`${base}/health`)).status).toBe(200);
    pool.setReady('i0', false);
    const h = await fetch(`${base}/health`);
    expect(h.status).toBe(503);
    expect(h.headers.get('retry-after')).toBe('1');
  });
});

describe('balancer proxy: errors', () => {
  it('answers an unknown model with a JSON 404, bad JSON with 400, a huge body with 413, other paths with 404', async () => {
    const { base } = await setup({ sims: [{}], proxy: { maxBodyBytes: 1000 } });
    const unknown = await post(`${base}/v1/chat/completions`, chat({ model: 'gpt-9' }));
    expect(unknown.status).toBe(404);
    const body = await unknown.json();
    expect(body.error.code).toBe('model_not_found');
    expect(body.error.message).toContain('gpt-9');

    const bad = await fetch(`${base}/v1/chat/completions`, { method: 'POST', body: '{' });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.code).toBe('invalid_json');
    const noModel = await post(`${base}/v1/chat/completions`, { messages: [] });
    expect(noModel.status).toBe(400);
    expect((await noModel.json()).error.message).toMatch(/^model: /);

    const huge = await post(`${base}/v1/chat/completions`, chat({ pad: 'x'.repeat(2000) }));
    expect(huge.status).toBe(413);
    expect((await huge.json()).error.code).toBe('body_too_large');

    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/v1/chat/completions`)).status).toBe(405);
  });

  it('answers 503 with Retry-After when no instance serving the model is ready', async () => {
    const { base, pool } = await setup({ sims: [{}] });
    pool.setReady('i0', false);
    const res = await post(`${base}/v1/chat/completions`, chat());
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect((await res.json()).error.code).toBe('no_ready_instance');
  });

  it('passes an instance 5xx through (no retry) and ejects the instance after consecutive failures', async () => {
    const { base, sims, pool, balancer } = await setup({ sims: [{}, {}], pool: { outlier: { consecutiveFailures: 2, baseEjectionMs: 60_000 } } });
    await sims[0].setFault({ kind: 'error' });
    const first = await post(`${base}/v1/chat/completions`, chat());
    expect(first.status).toBe(500);
    expect(first.headers.get('x-arus-instance')).toBe('i0');
    const ids: (string | null)[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await post(`${base}/v1/chat/completions`, chat());
      ids.push(`${res.status} ${res.headers.get('x-arus-instance')}`);
    }
    // i0 fails once more (its second in a row), is ejected, and i1 takes everything after.
    expect(ids).toEqual(['200 i1', '500 i0', '200 i1', '200 i1', '200 i1', '200 i1']);
    expect(pool.states()[0].ejectedUntil).toBeGreaterThan(Date.now());
    expect(balancer.stats().ejections).toBe(1);
    expect(balancer.stats().retries).toBe(0);
  });

  it('answers 504 when an instance hangs past the headers timeout, and counts it as a timeout', async () => {
    const { base, sims, pool } = await setup({ sims: [{}], proxy: { upstreamHeadersTimeoutMs: 150 }, pool: { outlier: { consecutiveFailures: 1 } } });
    await sims[0].setFault({ kind: 'hang' });
    const t0 = performance.now();
    const res = await post(`${base}/v1/chat/completions`, chat());
    expect(res.status).toBe(504);
    expect((await res.json()).error.code).toBe('upstream_timeout');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    expect(pool.states()[0].ejectedUntil).toBeDefined();
  });
});

describe('balancer proxy: retries', () => {
  it('retries a refused connection on another instance: the client sees 200', async () => {
    const { base, sims, balancer } = await setup({ sims: [{}, {}] });
    expect((await post(`${base}/v1/chat/completions`, chat())).headers.get('x-arus-instance')).toBe('i0');
    await sims[0].setFault({ kind: 'crash' });
    const results: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await post(`${base}/v1/chat/completions`, chat());
      results.push(`${res.status} ${res.headers.get('x-arus-instance')}`);
      await res.arrayBuffer();
    }
    expect(results).toEqual(['200 i1', '200 i1', '200 i1', '200 i1']);
    // Every attempt that failed on i0 was retried (how many reached i0 is the picker's business).
    const st = balancer.stats();
    expect(st.retries).toBeGreaterThanOrEqual(2);
    expect(st.instances.i0.failures).toBe(st.retries);
    expect(st.instances.i1.failures).toBe(0);
  });

  it('retries a 503 from an instance (out of GPU memory) on another', async () => {
    const { base, sims, balancer } = await setup({ sims: [{}, {}] });
    await sims[0].setFault({ kind: 'oom' });
    for (let i = 0; i < 4; i++) {
      const res = await post(`${base}/v1/chat/completions`, chat());
      expect(res.status).toBe(200);
      expect(res.headers.get('x-arus-instance')).toBe('i1');
    }
    expect(balancer.stats().retries).toBeGreaterThanOrEqual(2);
    expect(balancer.stats().instances.i0.failures).toBe(balancer.stats().retries);
  });

  it('does not retry beyond the budget: the failure reaches the client', async () => {
    const { base, sims, balancer } = await setup({ sims: [{}, {}], proxy: { retryBudget: { ratio: 0, minPerSecond: 0 } } });
    await sims[0].setFault({ kind: 'crash' });
    const res = await post(`${base}/v1/chat/completions`, chat());
    expect(res.status).toBe(502);
    expect((await res.json()).error.code).toBe('upstream_failed');
    expect(balancer.stats().retriesDenied).toBe(1);
    expect(balancer.stats().retries).toBe(0);
  });

  it('does not retry once bytes reached the client: a stream cut by a crash is cut for the client too', async () => {
    const { base, sims, balancer } = await setup({ sims: [{ tokensPerSecond: 20 }, {}] });
    const res = await post(`${base}/v1/chat/completions`, chat({ max_tokens: 100, stream: true }));
    const reader = res.body!.getReader();
    await reader.read();
    await sims[0].setFault({ kind: 'crash' });
    await expect(
      (async () => {
        for (;;) if ((await reader.read()).done) throw new Error('stream ended cleanly');
      })(),
    ).rejects.toThrow(/terminated|other side closed/);
    expect(balancer.stats().retries).toBe(0);
    expect(balancer.stats().instances.i0.failures).toBe(1);
  });
});

describe('balancer proxy: cancellation and overload', () => {
  it('cancels the upstream request when the client disconnects mid-stream', async () => {
    const { base, simBases, pool } = await setup({ sims: [{ tokensPerSecond: 10 }] });
    const ac = new AbortController();
    const res = await post(`${base}/v1/chat/completions`, chat({ max_tokens: 100, stream: true }), ac.signal);
    await res.body!.getReader().read();
    expect(await gauge(simBases[0], 'vllm:num_requests_running')).toBe(1);
    expect(pool.states()[0].outstanding).toBe(1);
    ac.abort();
    await until(async () => (await gauge(simBases[0], 'vllm:num_requests_running')) === 0, 1000);
    await until(() => pool.states()[0].outstanding === 0, 1000);
    expect(pool.states()[0].consecutiveFailures).toBe(0); // a client leaving is not the instance's fault
  });

  it('cancels a request still waiting in the queue when its client leaves', async () => {
    const { base, balancer } = await setup({ sims: [{ tokensPerSecond: 10 }], proxy: { maxConcurrentPerInstance: 1, maxQueue: 4 } });
    const hold = new AbortController();
    const running = await post(`${base}/v1/chat/completions`, chat({ max_tokens: 100, stream: true }), hold.signal);
    const ac = new AbortController();
    const queued = post(`${base}/v1/chat/completions`, chat(), ac.signal).catch(() => 'aborted');
    await until(() => balancer.stats().queueDepth === 1);
    ac.abort();
    expect(await queued).toBe('aborted');
    await until(() => balancer.stats().queueDepth === 0, 1000);
    hold.abort();
    await running.body?.cancel().catch(() => {});
  });

  it('caps concurrency per instance, queues, and answers 503 with Retry-After when the queue is full', async () => {
    const { base, simBases, balancer } = await setup({
      sims: [{ ttftMs: 200, tokensPerSecond: 1000 }],
      proxy: { maxConcurrentPerInstance: 2, maxQueue: 1, queueTimeoutMs: 3000 },
    });
    const inflight = [0, 1, 2].map(() => post(`${base}/v1/chat/completions`, chat({ max_tokens: 1 })));
    await until(() => balancer.stats().queueDepth === 1);
    expect(await gauge(simBases[0], 'vllm:num_requests_running')).toBe(2); // the cap, not the sim's 16
    const refused = await post(`${base}/v1/chat/completions`, chat());
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('3');
    expect((await refused.json()).error.code).toBe('overloaded');
    // The queued request is served once a slot frees.
    expect((await Promise.all(inflight)).map((r) => r.status)).toEqual([200, 200, 200]);
    expect(balancer.stats().overloaded).toBe(1);
  });

  it('answers 503 when a queued request waits past its deadline', async () => {
    const { base } = await setup({ sims: [{ ttftMs: 500 }], proxy: { maxConcurrentPerInstance: 1, queueTimeoutMs: 100 } });
    const first = post(`${base}/v1/chat/completions`, chat({ max_tokens: 1 }));
    await sleep(20);
    const t0 = performance.now();
    const late = await post(`${base}/v1/chat/completions`, chat());
    expect(late.status).toBe(503);
    expect(late.headers.get('retry-after')).toBe('1');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(90);
    expect(performance.now() - t0).toBeLessThan(400);
    expect((await first).status).toBe(200);
  });

  it('sends a queued request to whichever instance frees first', async () => {
    const { base } = await setup({ sims: [{ ttftMs: 400 }, { ttftMs: 50 }], proxy: { maxConcurrentPerInstance: 1 } });
    const a = post(`${base}/v1/chat/completions`, chat({ max_tokens: 1 }));
    const b = post(`${base}/v1/chat/completions`, chat({ max_tokens: 1 }));
    await sleep(20);
    const c = await post(`${base}/v1/chat/completions`, chat({ max_tokens: 1 }));
    expect(c.headers.get('x-arus-instance')).toBe('i1');
    expect((await a).status).toBe(200);
    expect((await b).status).toBe(200);
  });
});

describe('balancer readiness', () => {
  it('gives a warming instance no traffic until its model is loaded, then some', async () => {
    let simNow = 0;
    const { base, pool } = await setup({ sims: [{}, { warmupMs: 10_000, now: () => simNow }], readiness: { intervalMs: 20 } });
    await until(() => pool.states()[0].ready);
    const before: (string | null)[] = [];
    for (let i = 0; i < 6; i++) before.push((await post(`${base}/v1/chat/completions`, chat())).headers.get('x-arus-instance'));
    expect(tally(before)).toEqual({ i0: 6 });
    expect(pool.states()[1].ready).toBe(false);

    simNow = 10_000; // the model finishes loading
    await until(() => pool.states()[1].ready);
    const after: (string | null)[] = [];
    for (let i = 0; i < 6; i++) after.push((await post(`${base}/v1/chat/completions`, chat())).headers.get('x-arus-instance'));
    expect(tally(after)).toEqual({ i0: 3, i1: 3 });
  });

  it('keeps an instance out while /v1/models lacks a configured model, and takes it out when /health fails', async () => {
    const { pool, sims, readiness } = await setup({ sims: [{}, { model: 'other-model' }], readiness: { intervalMs: 20 } });
    await until(() => pool.states()[0].ready);
    await readiness!.checkAll();
    expect(pool.states()[1].ready).toBe(false);
    await sims[0].setFault({ kind: 'error' });
    await until(() => !pool.states()[0].ready); // after `fall` (2) failed checks
  });

  it('scrapes vLLM gauges and GPU memory into the pool', async () => {
    const { pool, sims, readiness } = await setup({ sims: [{}], readiness: { intervalMs: 20 } });
    await until(() => pool.states()[0].gpu !== undefined);
    const g = pool.states()[0].gpu!;
    expect(g).toMatchObject({ running: 0, waiting: 0, kvCacheUsage: 0, memoryExhausted: false });
    expect(Date.now() - g.scrapedAt).toBeLessThan(1000);
    await sims[0].setFault({ kind: 'oom' });
    await readiness!.checkAll();
    expect(pool.states()[0].gpu!.memoryExhausted).toBe(true);
  });
});

describe('retry budget', () => {
  it('allows minPerSecond × window retries with no traffic, plus ratio × requests, over a sliding window', () => {
    let t = 0;
    const b = createRetryBudget({ ratio: 0.5, minPerSecond: 1, windowS: 10, now: () => t });
    const take = (n: number) => Array.from({ length: n }, () => b.tryWithdraw()).filter(Boolean).length;
    expect(take(15)).toBe(10);
    for (let i = 0; i < 10; i++) b.deposit();
    expect(take(10)).toBe(5);
    t += 10_000; // the window slid past all of it
    expect(take(20)).toBe(10);
  });
});
