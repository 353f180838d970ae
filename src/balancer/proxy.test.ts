import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
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
  readiness?: { intervalMs: number; now?: () => number };
}): Promise<Setup> {
  const sims: SimServer[] = [];
  const urls: string[] = [];
  for (const so of o.sims) {
    const s = createSimServer({ log, ttftMs: 5, tokensPerSecond: 1000, ...so });
    cleanup.push(() => s.stop());
    const { port } = await s.start();
    sims.push(s);
    urls.push(`http://127.0.0.1:${port}`);
  }
  return { sims, ...(await front(urls, o)) };
}

/** Pool, proxy and balancer server in front of these instance URLs (`i0`, `i1`…). */
async function front(urls: string[], o: Omit<Parameters<typeof setup>[0], 'sims'>): Promise<Omit<Setup, 'sims'>> {
  const instances: Instance[] = urls.map((url, i) => ({ id: `i${i}`, url, weight: 1, models: o.models?.[i] ?? [MODEL], kinds: ['chat', 'completion', 'embeddings'] }));
  const pool = createPool({ instances, picker: createPicker('round-robin'), slowStartMs: 0, ...o.pool });
  const proxy = createProxy({ pool, log, ...o.proxy });
  cleanup.push(() => proxy.close());
  let readiness: Readiness | undefined;
  if (o.readiness) {
    readiness = createReadiness({ pool, log, ...o.readiness, onChange: () => proxy.wake() });
    cleanup.push(() => readiness!.stop());
    readiness.start();
  } else for (const i of instances) pool.setReady(i.id, true);
  const balancer = createBalancerServer({ proxy, log });
  cleanup.push(() => balancer.stop());
  const { port } = await balancer.start();
  return { simBases: urls, pool, balancer, base: `http://127.0.0.1:${port}`, readiness };
}

/**
 * An instance that holds every chat request until the test lets it go: a
 * test of the queue decides when a slot frees, not the timers of a sim.
 */
type Gate = { url: string; readonly held: number; release(n?: number): void };

async function gate(): Promise<Gate> {
  const waiting: ServerResponse[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => waiting.push(res));
    // A request the proxy gave up on is no longer held.
    res.on('close', () => {
      const i = waiting.indexOf(res);
      if (i >= 0) waiting.splice(i, 1);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const answer = JSON.stringify({ object: 'chat.completion', model: MODEL, choices: [{ index: 0, message: { role: 'assistant', content: 'held' }, finish_reason: 'stop' }] });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get held() {
      return waiting.length;
    },
    release(n = 1) {
      for (const res of waiting.splice(0, n)) res.writeHead(200, { 'content-type': 'application/json' }).end(answer);
    },
  };
}

async function gated(n: number, proxy: Partial<ProxyOptions>) {
  const gates: Gate[] = [];
  for (let i = 0; i < n; i++) gates.push(await gate());
  return { gates, ...(await front(gates.map((g) => g.url), { proxy })) };
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

/** Waits for what must come; the deadline only keeps a broken test from hanging until vitest's own. */
async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
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
    const { base, simBases } = await setup({ sims: [{ tokensPerSecond: 20 }] });
    const res = await post(`${base}/v1/chat/completions`, chat({ max_tokens: 5, stream: true }));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('x-arus-instance')).toBe('i0');
    const events = await readSse(res, 0);
    expect(events.at(-1)!.data).toBe('[DONE]');
    expect(events).toHaveLength(7); // 5 tokens, the closing chunk, [DONE]

    // A generation of 100 s (2000 tokens, 50 ms apart): its first tokens reach the client while the
    // instance is still generating. A buffering proxy delivers nothing before the end.
    const ac = new AbortController();
    const long = await post(`${base}/v1/chat/completions`, chat({ max_tokens: 2000, stream: true }), ac.signal);
    const reader = long.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (text.split('\n\n').length <= 3) {
      const { value, done } = await reader.read();
      if (done) throw new Error('stream ended');
      text += value;
    }
    const tokens = text
      .split('\n\n')
      .slice(0, 3)
      .map((e) => (JSON.parse(e.replace(/^data: /, '')) as { choices: { delta: { content?: string } }[] }).choices[0].delta.content);
    expect(tokens.join('')).toBe('The model answers');
    expect(await gauge(simBases[0], 'vllm:num_requests_running')).toBe(1);
    ac.abort();
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
    // The pool and the proxy read one clock that only the test moves: the ejection's end is exact.
    let clock = 1_000_000;
    const now = () => clock;
    const { base, sims, pool, balancer } = await setup({ sims: [{}, {}], pool: { now, outlier: { consecutiveFailures: 2, baseEjectionMs: 30_000 } }, proxy: { now } });
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
    expect(pool.states()[0].ejectedUntil).toBe(clock + 30_000);
    expect(balancer.stats().ejections).toBe(1);
    expect(balancer.stats().retries).toBe(0);
    clock += 29_999;
    expect(balancer.stats().ejections).toBe(1);
    clock += 1;
    expect(balancer.stats().ejections).toBe(0);
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
    const res = await post(`${base}/v1/chat/completions`, chat({ max_tokens: 2000, stream: true }));
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
    const res = await post(`${base}/v1/chat/completions`, chat({ max_tokens: 2000, stream: true }), ac.signal);
    await res.body!.getReader().read();
    expect(await gauge(simBases[0], 'vllm:num_requests_running')).toBe(1);
    expect(pool.states()[0].outstanding).toBe(1);
    ac.abort();
    await until(async () => (await gauge(simBases[0], 'vllm:num_requests_running')) === 0);
    await until(() => pool.states()[0].outstanding === 0);
    expect(pool.states()[0].consecutiveFailures).toBe(0); // a client leaving is not the instance's fault
  });

  it('cancels a request still waiting in the queue when its client leaves', async () => {
    const { gates, base, balancer } = await gated(1, { maxConcurrentPerInstance: 1, maxQueue: 4 });
    const running = post(`${base}/v1/chat/completions`, chat());
    await until(() => gates[0].held === 1);
    const ac = new AbortController();
    const queued = post(`${base}/v1/chat/completions`, chat(), ac.signal).catch(() => 'aborted');
    await until(() => balancer.stats().queueDepth === 1);
    ac.abort();
    expect(await queued).toBe('aborted');
    await until(() => balancer.stats().queueDepth === 0);
    gates[0].release();
    expect((await running).status).toBe(200);
  });

  it('caps concurrency per instance, queues, and answers 503 with Retry-After when the queue is full', async () => {
    const { gates, base, balancer } = await gated(1, { maxConcurrentPerInstance: 2, maxQueue: 1, queueTimeoutMs: 3000 });
    const inflight = [0, 1, 2].map(() => post(`${base}/v1/chat/completions`, chat({ max_tokens: 1 })));
    await until(() => gates[0].held === 2 && balancer.stats().queueDepth === 1);
    const refused = await post(`${base}/v1/chat/completions`, chat());
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('3');
    expect((await refused.json()).error.code).toBe('overloaded');
    expect(gates[0].held).toBe(2); // the cap, whatever is waiting
    // The queued request is served once a slot frees.
    gates[0].release();
    await until(() => gates[0].held === 2 && balancer.stats().queueDepth === 0);
    gates[0].release(2);
    expect((await Promise.all(inflight)).map((r) => r.status)).toEqual([200, 200, 200]);
    expect(balancer.stats().overloaded).toBe(1);
  });

  it('answers 503 when a queued request waits past its deadline', async () => {
    const { gates, base } = await gated(1, { maxConcurrentPerInstance: 1, queueTimeoutMs: 100 });
    const first = post(`${base}/v1/chat/completions`, chat({ max_tokens: 1 }));
    await until(() => gates[0].held === 1);
    // The slot is held until the test frees it: only the queue's deadline can answer the late request.
    const t0 = performance.now();
    const late = await post(`${base}/v1/chat/completions`, chat());
    expect(late.status).toBe(503);
    expect(late.headers.get('retry-after')).toBe('1');
    expect((await late.json()).error).toMatchObject({ code: 'overloaded', message: 'timed out waiting for a free slot' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(90);
    expect(gates[0].held).toBe(1);
    gates[0].release();
    expect((await first).status).toBe(200);
  });

  it('sends a queued request to whichever instance frees first', async () => {
    const { gates, base, balancer } = await gated(2, { maxConcurrentPerInstance: 1 });
    const a = post(`${base}/v1/chat/completions`, chat({ max_tokens: 1 }));
    const b = post(`${base}/v1/chat/completions`, chat({ max_tokens: 1 }));
    await until(() => gates[0].held === 1 && gates[1].held === 1);
    const c = post(`${base}/v1/chat/completions`, chat({ max_tokens: 1 }));
    await until(() => balancer.stats().queueDepth === 1);
    // i1 frees first (round-robin alone would send the third request to i0).
    gates[1].release();
    await until(() => gates[1].held === 1);
    gates[1].release();
    expect((await c).headers.get('x-arus-instance')).toBe('i1');
    gates[0].release();
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
    let clock = 1_000_000;
    // One round at start, then only the test's own: a periodic round already under way when the fault
    // is set would be the one checkAll waits for (a check in flight is joined), with the gauges from before.
    const { pool, sims, readiness } = await setup({ sims: [{}], readiness: { intervalMs: 600_000, now: () => clock } });
    await until(() => pool.states()[0].gpu !== undefined);
    expect(pool.states()[0].gpu).toEqual({ running: 0, waiting: 0, kvCacheUsage: 0, memoryExhausted: false, scrapedAt: 1_000_000, prefixQueries: 0, kvBlocks: 2048 });
    await sims[0].setFault({ kind: 'oom' });
    clock += 500;
    await readiness!.checkAll();
    expect(pool.states()[0].gpu).toMatchObject({ memoryExhausted: true, scrapedAt: 1_000_500 });
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
