import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { embedVector } from './openai.js';
import { createSimServer, type SimServer, type SimServerOptions } from './server.js';

const MODEL = 'bge-small';
const servers: SimServer[] = [];

async function sim(opts: Partial<SimServerOptions> = {}): Promise<string> {
  const s = createSimServer({ log: silentLogger(), model: MODEL, ttftMs: 5, tokensPerSecond: 1000, embedCallMs: 1, embedPerInputMs: 0, ...opts });
  servers.push(s);
  const { port } = await s.start();
  return `http://127.0.0.1:${port}`;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

const post = (url: string, body: unknown) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const embed = (base: string, input: unknown, extra: object = {}) => post(`${base}/v1/embeddings`, { model: MODEL, input, ...extra });

type EmbeddingList = {
  object: string;
  model: string;
  data: { object: string; index: number; embedding: number[] }[];
  usage: { prompt_tokens: number; total_tokens: number };
};

function gauge(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`));
  if (!line) throw new Error(`no ${name} in metrics`);
  return Number(line.split(' ').at(-1));
}

describe('sim: embeddings', () => {
  it('answers in the OpenAI shape, one vector per input, in order', async () => {
    const base = await sim();
    const res = await embed(base, ['first text', 'second', 'a third input here']);
    expect(res.status).toBe(200);
    const body = (await res.json()) as EmbeddingList;
    expect(body.object).toBe('list');
    expect(body.model).toBe(MODEL);
    expect(body.usage).toEqual({ prompt_tokens: 7, total_tokens: 7 });
    expect(body.data.map((d) => [d.object, d.index, d.embedding.length])).toEqual([
      ['embedding', 0, 16],
      ['embedding', 1, 16],
      ['embedding', 2, 16],
    ]);
    expect(body.data.map((d) => d.embedding)).toEqual(['first text', 'second', 'a third input here'].map((t) => embedVector(t, 16)));
    expect(Math.hypot(...body.data[0].embedding)).toBeCloseTo(1, 5);
  });

  it('is deterministic per input and different across inputs, single or batched', async () => {
    const base = await sim();
    const one = async (input: unknown) => ((await (await embed(base, input)).json()) as EmbeddingList).data.map((d) => d.embedding);
    const [a] = await one('hello world');
    const [b] = await one('hello world');
    const batch = await one(['other', 'hello world']);
    expect(a).toEqual(b);
    expect(batch[1]).toEqual(a);
    expect(batch[0]).not.toEqual(a);
  });

  it('takes token arrays, `dimensions` and base64 encoding', async () => {
    const base = await sim({ embedDimensions: 4 });
    const single = (await (await embed(base, [1, 2, 3])).json()) as EmbeddingList;
    expect(single.data).toHaveLength(1); // a flat array of ids is one input
    expect(single.data[0].embedding).toHaveLength(4);
    expect(single.usage.prompt_tokens).toBe(3);
    const pair = (await (await embed(base, [[1, 2], [3]], { dimensions: 8 })).json()) as EmbeddingList;
    expect(pair.data.map((d) => d.embedding.length)).toEqual([8, 8]);
    expect(pair.data[0].embedding).not.toEqual(pair.data[1].embedding);

    const floats = (await (await embed(base, 'x')).json()) as EmbeddingList;
    const b64 = (await (await embed(base, 'x', { encoding_format: 'base64' })).json()) as { data: { embedding: string }[] };
    const buf = Buffer.from(b64.data[0].embedding, 'base64');
    expect(Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4))).toEqual(floats.data[0].embedding);
  });

  it('rejects bad bodies with 400, an unknown model with 404, and answers 503 while loading', async () => {
    const base = await sim();
    for (const body of [{ model: MODEL }, { model: MODEL, input: [] }, { model: MODEL, input: 7 }, { model: MODEL, input: 'x', dimensions: 0 }]) {
      const res = await post(`${base}/v1/embeddings`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await res.json()).error.message).toMatch(/^(input|dimensions)/);
    }
    const unknown = await post(`${base}/v1/embeddings`, { model: 'other', input: 'x' });
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error.code).toBe('model_not_found');
    expect((await fetch(`${base}/v1/embeddings`)).status).toBe(405);

    const loading = await sim({ warmupMs: 60_000 });
    expect((await embed(loading, 'x')).status).toBe(503);
  });

  it('costs per call far more than per input: one call of 32 inputs beats 32 calls, which queue', async () => {
    const base = await sim({ embedCallMs: 20, embedPerInputMs: 1 });
    const inputs = Array.from({ length: 32 }, (_, i) => `input ${i}`);

    let t0 = performance.now();
    const batched = (await (await embed(base, inputs)).json()) as EmbeddingList;
    const batchedMs = performance.now() - t0;
    expect(batched.data).toHaveLength(32);
    expect(batchedMs).toBeGreaterThanOrEqual(20 + 32 - 3);

    t0 = performance.now();
    const calls = inputs.map(async (input) => ((await (await embed(base, input)).json()) as EmbeddingList).data[0].embedding);
    // One forward pass at a time: the others wait, and /metrics says so.
    let sawQueue = false;
    const watch = (async () => {
      for (let i = 0; i < 200 && !sawQueue; i++) {
        const m = await (await fetch(`${base}/metrics`)).text();
        sawQueue = gauge(m, 'vllm:num_requests_running') === 1 && gauge(m, 'vllm:num_requests_waiting') > 0;
      }
    })();
    const single = await Promise.all(calls);
    const singleMs = performance.now() - t0;
    await watch;
    expect(sawQueue).toBe(true);
    expect(single).toEqual(batched.data.map((d) => d.embedding)); // each caller its own vector
    expect(singleMs).toBeGreaterThanOrEqual(32 * 21 - 30);
    // Floors only: a busy machine lengthens either. What each costs, exactly: engine.test.ts, on a hand-moved clock.
  });
});

describe('sim: kinds', () => {
  it('an embedding-only instance answers chat and completions with 404 and still lists its model', async () => {
    const base = await sim({ kinds: ['embeddings'] });
    for (const [path, body] of [
      ['/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }] }],
      ['/v1/completions', { model: MODEL, prompt: 'hi' }],
    ] as const) {
      const res = await post(`${base}${path}`, body);
      expect(res.status, path).toBe(404);
      expect((await res.json()).error.code).toBe('endpoint_not_served');
    }
    expect((await embed(base, 'x')).status).toBe(200);
    expect((await (await fetch(`${base}/v1/models`)).json()).data.map((m: { id: string }) => m.id)).toEqual([MODEL]);
  });

  it('a generative instance answers embeddings with 404', async () => {
    const base = await sim({ kinds: ['chat', 'completion'] });
    const res = await embed(base, 'x');
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe('endpoint_not_served');
    expect((await post(`${base}/v1/completions`, { model: MODEL, prompt: 'hi', max_tokens: 1 })).status).toBe(200);
  });
});
