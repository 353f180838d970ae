import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../log.js';
import { embedVector } from '../sim/openai.js';
import { createSimServer, type SimServer, type SimServerOptions } from '../sim/server.js';
import { apportion, createBatcher, splitInput, type BatchResponse } from './batch.js';
import { createPicker } from './pickers/create-picker.js';
import { createPool } from './pool.js';
import { createProxy, type Proxy, type ProxyOptions } from './proxy.js';
import { createBalancerServer } from './server.js';

const MODEL = 'bge-small';
const log = silentLogger();
const cleanup: Array<() => Promise<void>> = [];

afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanup.splice(0).reverse()) await c();
});

type Sent = { body: Record<string, unknown> };

// The batcher's window is a setTimeout: tests that depend on when a batch goes fake it (and nothing
// else), so they decide when the window ends instead of the machine's scheduler.
const fakeWindow = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });

/** A fake upstream: echoes one entry per input (its text as `embedding`), counts one token per input. */
function fakeSend(sent: Sent[], answer?: (body: Record<string, unknown>) => BatchResponse | Promise<BatchResponse>) {
  return async (body: Record<string, unknown>): Promise<BatchResponse> => {
    sent.push({ body });
    if (answer) return answer(body);
    const inputs = splitInput(body.input)!.inputs;
    const json = {
      object: 'list',
      model: body.model,
      data: inputs.map((x, index) => ({ object: 'embedding', index, embedding: x })),
      usage: { prompt_tokens: inputs.length, total_tokens: inputs.length },
    };
    return { status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(json)) };
  };
}

const json = (r: BatchResponse) => JSON.parse(r.body.toString('utf8')) as { data: { index: number; embedding: unknown }[]; usage: Record<string, number> };

describe('batcher (unit)', () => {
  it('coalesces calls within the window into one send and splits the answer back by index', async () => {
    const sent: Sent[] = [];
    const b = createBatcher({ windowMs: 20, maxBatch: 32, send: fakeSend(sent) });
    const p1 = b.submit({ model: MODEL, input: 'a' })!;
    const p2 = b.submit({ model: MODEL, input: ['b', 'c'] })!;
    const p3 = b.submit({ model: MODEL, input: ['d'] })!;
    const [r1, r2, r3] = await Promise.all([p1, p2, p3]);
    expect(sent).toHaveLength(1);
    expect(sent[0].body).toEqual({ model: MODEL, input: ['a', 'b', 'c', 'd'] });
    expect(json(r1).data).toEqual([{ object: 'embedding', index: 0, embedding: 'a' }]);
    expect(json(r2).data).toEqual([
      { object: 'embedding', index: 0, embedding: 'b' },
      { object: 'embedding', index: 1, embedding: 'c' },
    ]);
    expect(json(r3).data).toEqual([{ object: 'embedding', index: 0, embedding: 'd' }]);
    // usage split over the callers sums to the upstream's
    const usages = [r1, r2, r3].map((r) => json(r).usage.prompt_tokens);
    expect(usages.reduce((a, x) => a + x, 0)).toBe(4);
    expect(usages).toEqual([1, 2, 1]);
    expect(b.stats()).toEqual({ batches: 1, calls: 3, pending: 0 });
  });

  it('holds a batch open for exactly windowMs: a call inside the window joins it, one after starts the next', async () => {
    fakeWindow();
    const sent: Sent[] = [];
    const b = createBatcher({ windowMs: 50, maxBatch: 32, send: fakeSend(sent) });
    const p1 = b.submit({ model: MODEL, input: 'a' })!;
    await vi.advanceTimersByTimeAsync(49);
    const p2 = b.submit({ model: MODEL, input: 'b' })!;
    expect(sent).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(sent.map((s) => s.body.input)).toEqual([['a', 'b']]);
    const p3 = b.submit({ model: MODEL, input: 'c' })!;
    await vi.advanceTimersByTimeAsync(49);
    expect(sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(sent.map((s) => s.body.input)).toEqual([['a', 'b'], 'c']);
    expect((await Promise.all([p1, p2, p3])).map((r) => json(r).data[0].embedding)).toEqual(['a', 'b', 'c']);
    expect(b.stats()).toEqual({ batches: 2, calls: 3, pending: 0 });
  });

  it('sends at once when maxBatch inputs are waiting, without waiting out the window', async () => {
    fakeWindow();
    const sent: Sent[] = [];
    const b = createBatcher({ windowMs: 5000, maxBatch: 4, send: fakeSend(sent) });
    const full = ['a', 'b', 'c', 'd'].map((x) => b.submit({ model: MODEL, input: x })!);
    // No time passes: the full batch goes on its own; a fifth call waits for its window.
    await vi.advanceTimersByTimeAsync(0);
    expect(sent.map((s) => s.body.input)).toEqual([['a', 'b', 'c', 'd']]);
    expect((await Promise.all(full)).map((r) => json(r).data[0].embedding)).toEqual(['a', 'b', 'c', 'd']);
    const all = [...full, b.submit({ model: MODEL, input: 'e' })!];
    await vi.advanceTimersByTimeAsync(4999);
    expect(b.stats()).toEqual({ batches: 1, calls: 4, pending: 1 });
    b.flush();
    expect(json(await all[4]).data[0].embedding).toBe('e');
    expect(sent.map((s) => s.body.input)).toEqual([['a', 'b', 'c', 'd'], 'e']);
  });

  it('starts a new batch when a call would not fit, and leaves calls of maxBatch inputs or more alone', async () => {
    const sent: Sent[] = [];
    const b = createBatcher({ windowMs: 10, maxBatch: 4, send: fakeSend(sent) });
    expect(b.submit({ model: MODEL, input: ['1', '2', '3', '4'] })).toBeUndefined();
    expect(b.submit({ model: MODEL, input: [] })).toBeUndefined();
    expect(b.submit({ model: MODEL, input: 42 })).toBeUndefined();
    expect(b.submit({ model: MODEL, input: ['x', 1] })).toBeUndefined();
    const p1 = b.submit({ model: MODEL, input: ['a', 'b', 'c'] })!;
    const p2 = b.submit({ model: MODEL, input: ['d', 'e'] })!;
    await Promise.all([p1, p2]);
    expect(sent.map((s) => s.body.input)).toEqual([['a', 'b', 'c'], ['d', 'e']]);
  });

  it('never merges calls whose options differ (model, dimensions, encoding_format, user, key, text vs token ids)', async () => {
    const sent: Sent[] = [];
    const b = createBatcher({ windowMs: 10, maxBatch: 32, send: fakeSend(sent) });
    const calls = [
      b.submit({ model: MODEL, input: 'a' }),
      b.submit({ model: MODEL, input: 'b' }),
      b.submit({ input: 'c', model: MODEL }), // key order does not matter
      b.submit({ model: 'other', input: 'a' }),
      b.submit({ model: MODEL, input: 'a', dimensions: 8 }),
      b.submit({ model: MODEL, input: 'a', encoding_format: 'base64' }),
      b.submit({ model: MODEL, input: 'a', user: 'u1' }),
      b.submit({ model: MODEL, input: 'a', user: 'u2' }),
      b.submit({ model: MODEL, input: 'a' }, { key: 'Bearer other' }),
      b.submit({ model: MODEL, input: [1, 2, 3] }),
      b.submit({ model: MODEL, input: [[4, 5]] }),
    ].map((p) => p!);
    await Promise.all(calls);
    const inputs = sent.map((s) => s.body.input);
    expect(inputs).toHaveLength(8);
    expect(inputs).toContainEqual(['a', 'b', 'c']);
    expect(inputs).toContainEqual([[1, 2, 3], [4, 5]]);
    const tokenAnswers = await Promise.all(calls.slice(-2));
    expect(json(tokenAnswers[0]).data).toEqual([{ object: 'embedding', index: 0, embedding: [1, 2, 3] }]);
    expect(json(tokenAnswers[1]).data).toEqual([{ object: 'embedding', index: 0, embedding: [4, 5] }]);
  });

  it('gives an upstream error to every caller, status and body as they are', async () => {
    const err = { status: 500, headers: { 'content-type': 'application/json' }, body: Buffer.from('{"error":{"message":"boom"}}') };
    const b = createBatcher({ windowMs: 10, maxBatch: 32, send: fakeSend([], () => err) });
    const out = await Promise.all(['a', 'b', 'c'].map((x) => b.submit({ model: MODEL, input: x })!));
    for (const r of out) {
      expect(r.status).toBe(500);
      expect(r.body.toString()).toBe('{"error":{"message":"boom"}}');
    }
  });

  it('rejects every caller when send throws, and answers 502 when the upstream returns the wrong number of vectors', async () => {
    const boom = createBatcher({ windowMs: 5, maxBatch: 32, send: () => Promise.reject(new Error('refused')) });
    const settled = await Promise.allSettled(['a', 'b'].map((x) => boom.submit({ model: MODEL, input: x })!));
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);

    const short = createBatcher({
      windowMs: 5,
      maxBatch: 32,
      send: fakeSend([], () => ({ status: 200, headers: {}, body: Buffer.from(JSON.stringify({ data: [{ index: 0, embedding: [1] }] })) })),
    });
    const out = await Promise.all(['a', 'b'].map((x) => short.submit({ model: MODEL, input: x })!));
    expect(out.map((r) => r.status)).toEqual([502, 502]);
  });

  it('puts answers back by their index even when the upstream orders them otherwise', async () => {
    const b = createBatcher({
      windowMs: 5,
      maxBatch: 32,
      send: fakeSend([], (body) => {
        const inputs = body.input as string[];
        const data = inputs.map((x, index) => ({ index, embedding: x })).reverse();
        return { status: 200, headers: {}, body: Buffer.from(JSON.stringify({ data })) };
      }),
    });
    const out = await Promise.all(['a', 'b', 'c'].map((x) => b.submit({ model: MODEL, input: x })!));
    expect(out.map((r) => json(r).data[0].embedding)).toEqual(['a', 'b', 'c']);
  });

  it('a caller that leaves before the batch goes takes its inputs out; the last one leaving a sent batch aborts it', async () => {
    const sent: Sent[] = [];
    let upstreamSignal: AbortSignal | undefined;
    const b = createBatcher({
      windowMs: 20,
      maxBatch: 32,
      send: async (body, signal) => {
        upstreamSignal = signal;
        return fakeSend(sent)(body);
      },
    });
    const ac = new AbortController();
    const gone = b.submit({ model: MODEL, input: 'leaver' }, { signal: ac.signal })!;
    const stays = b.submit({ model: MODEL, input: 'stays' })!;
    ac.abort(new Error('left'));
    await expect(gone).rejects.toThrow('left');
    expect(json(await stays).data).toEqual([{ object: 'embedding', index: 0, embedding: 'stays' }]);
    expect(sent.map((s) => s.body.input)).toEqual(['stays']);

    fakeWindow();
    const ac2 = new AbortController();
    const hanging = createBatcher({
      windowMs: 1,
      maxBatch: 32,
      send: (_body, signal) => {
        upstreamSignal = signal;
        return new Promise(() => {});
      },
    });
    const p = hanging.submit({ model: MODEL, input: 'x' }, { signal: ac2.signal })!;
    await vi.advanceTimersByTimeAsync(1); // the window ends: the batch is sent
    expect(upstreamSignal?.aborted).toBe(false);
    ac2.abort(new Error('bye'));
    await expect(p).rejects.toThrow('bye');
    expect(upstreamSignal?.aborted).toBe(true);
  });

  it('apportion splits a total so the parts sum to it', () => {
    expect(apportion(10, [1, 1, 1])).toEqual([4, 3, 3]);
    expect(apportion(7, [5, 0, 2])).toEqual([5, 0, 2]);
    expect(apportion(3, [0, 0])).toEqual([3, 0]);
    for (let i = 0; i < 50; i++) {
      const w = Array.from({ length: 1 + (i % 7) }, (_, j) => ((i * 7 + j * 13) % 11) + 1);
      const parts = apportion(i * 3, w);
      expect(parts.reduce((a, x) => a + x, 0)).toBe(i * 3);
    }
  });
});

// Real simulated embedding servers and a real balancer, over 127.0.0.1 sockets.

type EmbeddingList = { model: string; data: { object: string; index: number; embedding: number[] }[]; usage: { prompt_tokens: number; total_tokens: number } };

async function setup(o: { sim?: Partial<SimServerOptions>; proxy?: Partial<ProxyOptions> }): Promise<{ sim: SimServer; base: string; proxy: Proxy }> {
  const sim = createSimServer({ log, model: MODEL, kinds: ['embeddings'], embedCallMs: 20, embedPerInputMs: 1, ...o.sim });
  cleanup.push(() => sim.stop());
  const { port: simPort } = await sim.start();
  const pool = createPool({
    instances: [{ id: 'e0', url: `http://127.0.0.1:${simPort}`, weight: 1, models: [MODEL], kinds: ['embeddings'] }],
    picker: createPicker('round-robin'),
    slowStartMs: 0,
  });
  pool.setReady('e0', true);
  const proxy = createProxy({ pool, log, ...o.proxy });
  cleanup.push(() => proxy.close());
  const server = createBalancerServer({ proxy, log });
  cleanup.push(() => server.stop());
  const { port } = await server.start();
  return { sim, base: `http://127.0.0.1:${port}`, proxy };
}

const embed = (base: string, body: object) =>
  fetch(`${base}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, ...body }) });

async function burst(base: string, n: number) {
  const texts = Array.from({ length: n }, (_, i) => `caller ${i} says ${'word '.repeat(i % 5)}hello`);
  const answers = await Promise.all(
    texts.map(async (input) => {
      const res = await embed(base, { input });
      return { status: res.status, instance: res.headers.get('x-arus-instance'), body: (await res.json()) as EmbeddingList };
    }),
  );
  return { texts, answers };
}

// How many upstream calls a burst takes depends on when its callers reach the balancer, which the
// machine decides. These tests give the window a minute and the batch room for exactly the burst: the
// batch goes when the last caller joins it, one upstream call whatever the timing. When the window
// ends is the batcher's unit tests' business (fake timers).
const ONE_BATCH = (callers: number) => ({ batching: { embeddings: { windowMs: 60_000, maxBatch: callers } } });

describe('batching through the balancer (real sims)', () => {
  it('32 concurrent single-input calls: each caller gets exactly its own vector, all in one upstream call', async () => {
    const { base, proxy } = await setup({ proxy: ONE_BATCH(32) });
    const { texts, answers } = await burst(base, 32);
    answers.forEach((a, i) => {
      expect(a.status).toBe(200);
      expect(a.instance).toBe('e0');
      expect(a.body.model).toBe(MODEL);
      expect(a.body.data).toHaveLength(1);
      expect(a.body.data[0].index).toBe(0);
      expect(a.body.data[0].embedding).toEqual(embedVector(texts[i], 16));
      expect(a.body.usage.prompt_tokens).toBeGreaterThan(0);
    });
    const st = proxy.stats();
    expect(st.batchedCalls).toBe(32);
    expect(st.batches).toBe(1);
    expect(st.instances.e0.requests).toBe(1);
  });

  it('mixed sizes and options: multi-input callers get their vectors in order; other dimensions are a batch of their own', async () => {
    const { base } = await setup({ proxy: { batching: { embeddings: {} } } });
    const [a, b, c] = await Promise.all([
      embed(base, { input: ['one', 'two', 'three'] }),
      embed(base, { input: 'four' }),
      embed(base, { input: ['five', 'six'], dimensions: 8 }),
    ]);
    const [ja, jb, jc] = (await Promise.all([a.json(), b.json(), c.json()])) as EmbeddingList[];
    expect(ja.data.map((d) => [d.index, d.embedding])).toEqual(['one', 'two', 'three'].map((t, i) => [i, embedVector(t, 16)]));
    expect(jb.data.map((d) => [d.index, d.embedding])).toEqual([[0, embedVector('four', 16)]]);
    expect(jc.data.map((d) => [d.index, d.embedding])).toEqual(['five', 'six'].map((t, i) => [i, embedVector(t, 8)]));
    // the sim counts one token per word: usage split per caller sums to the whole
    expect(ja.usage.prompt_tokens + jb.usage.prompt_tokens).toBe(4);
    expect(jc.usage).toEqual({ prompt_tokens: 2, total_tokens: 2 });
  });

  it('an upstream error reaches every caller of the batch with its status', async () => {
    const { sim, base, proxy } = await setup({ proxy: ONE_BATCH(8) });
    await sim.setFault({ kind: 'error' });
    const answers = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const res = await embed(base, { input: `text ${i}` });
        return { status: res.status, body: (await res.json()) as { error?: { message: string } } };
      }),
    );
    for (const a of answers) {
      expect(a.status).toBe(500);
      expect(a.body.error?.message).toBeTruthy();
    }
    expect(proxy.stats().batchedCalls).toBe(8);
    expect(proxy.stats().batches).toBe(1);
  });

  it('is off by default: each call goes upstream on its own', async () => {
    const { base, proxy } = await setup({});
    await burst(base, 4);
    expect(proxy.stats().batches).toBeUndefined();
    expect(proxy.stats().instances.e0.requests).toBe(4);
  });
});
