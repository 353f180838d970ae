import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { createSimServer, type SimServer, type SimServerOptions } from './server.js';

const MODEL = 'llama-3-8b';
const servers: SimServer[] = [];

async function sim(opts: Partial<SimServerOptions> = {}): Promise<{ s: SimServer; base: string }> {
  const s = createSimServer({ log: silentLogger(), ttftMs: 5, tokensPerSecond: 1000, ...opts });
  servers.push(s);
  const { port } = await s.start();
  return { s, base: `http://127.0.0.1:${port}` };
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

const post = (url: string, body: unknown, signal?: AbortSignal) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });
const complete = (base: string, maxTokens: number, signal?: AbortSignal) =>
  post(`${base}/v1/completions`, { model: MODEL, prompt: 'x', max_tokens: maxTokens }, signal);

function gauge(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`));
  if (!line) throw new Error(`no ${name} in metrics`);
  return Number(line.split(' ').at(-1));
}

/** Scrapes until `ok` holds (or gives up after ~5 s) and returns the last scrape. */
async function metricsUntil(base: string, ok: (m: string) => boolean): Promise<string> {
  let m = '';
  for (let i = 0; i < 500; i++) {
    m = await (await fetch(`${base}/metrics`)).text();
    if (ok(m)) return m;
    await new Promise((r) => setTimeout(r, 10));
  }
  return m;
}

const counts = (m: string) => [gauge(m, 'vllm:num_requests_running'), gauge(m, 'vllm:num_requests_waiting')];

describe('sim: KV cache', () => {
  it('fills with concurrent long generations; requests that do not fit wait, and get in as space frees', async () => {
    // Each request holds 1 prompt + 300 completion tokens, 19 blocks of 16 (304 tokens): three fit in 1024, a fourth waits.
    const { base } = await sim({ kvCacheTokens: 1024, maxRunning: 16, tokensPerSecond: 10 });
    const acs = [1, 2, 3, 4].map(() => new AbortController());
    const inflight: Promise<unknown>[] = [];
    const send = (i: number) => inflight.push(complete(base, 300, acs[i].signal).catch(() => {}));

    send(0);
    let m = await metricsUntil(base, (t) => gauge(t, 'vllm:num_requests_running') === 1);
    expect(gauge(m, 'vllm:kv_cache_usage_perc')).toBeCloseTo(304 / 1024, 6);
    expect(gauge(m, 'arus_sim_kv_cache_tokens_used')).toBe(304);
    expect(gauge(m, 'arus_sim_kv_cache_tokens_total')).toBe(1024);

    for (const i of [1, 2, 3]) send(i);
    m = await metricsUntil(base, (t) => counts(t)[0] + counts(t)[1] === 4);
    expect(counts(m)).toEqual([3, 1]);
    expect(gauge(m, 'vllm:kv_cache_usage_perc')).toBeCloseTo((3 * 304) / 1024, 6);

    acs[0].abort(); // space frees: the waiting one runs
    m = await metricsUntil(base, (t) => gauge(t, 'vllm:num_requests_waiting') === 0);
    expect(counts(m)).toEqual([3, 0]);

    for (const ac of acs) ac.abort();
    await Promise.all(inflight);
    m = await metricsUntil(base, (t) => counts(t)[0] + counts(t)[1] === 0);
    expect(gauge(m, 'vllm:kv_cache_usage_perc')).toBe(0);
  });

  it('serves a request that waited for cache once the one ahead finishes', async () => {
    // 100 tokens are 6 whole blocks (96 tokens); each request needs 4 (61 tokens).
    const { base } = await sim({ kvCacheTokens: 100, ttftMs: 40, tokensPerSecond: 1000 });
    const t0 = performance.now();
    const res = await Promise.all([complete(base, 60), complete(base, 60)]);
    expect(res.map((r) => r.status)).toEqual([200, 200]);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(2 * (40 + 59) - 10); // one after the other
  });

  it('rejects a request larger than the whole cache with 400, as vLLM does past the context length', async () => {
    const { base } = await sim({ kvCacheTokens: 100 }); // whole blocks: 96 tokens
    const res = await complete(base, 96); // 1 prompt token + 96
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toMatch(/maximum context length is 96 tokens/);
    expect((await complete(base, 95)).status).toBe(200);
  });
});

describe('sim: batch speed', () => {
  // Four sequences at once, 24 tokens each at 200 tokens/s: 20 + 23·5 = 135 ms each when
  // the GPU keeps up with four (knee 4), 20 + 23·5·4 = 480 ms when it keeps up with one.
  async function fourAtOnce(batchKnee: number): Promise<number[]> {
    const { base } = await sim({ ttftMs: 20, tokensPerSecond: 200, batchKnee });
    return Promise.all(
      [1, 2, 3, 4].map(async () => {
        const t0 = performance.now();
        const res = await complete(base, 24);
        expect((await res.json()).usage.completion_tokens).toBe(24);
        return performance.now() - t0;
      }),
    );
  }

  it('slows each sequence down once the batch passes the knee', async () => {
    // Never sooner than the slowed schedule allows; a busy machine only adds. That the knee (4) keeps full
    // speed, and the exact schedule either way, are checked on a hand-moved clock in engine.test.ts.
    const slow = await fourAtOnce(1);
    for (const ms of slow) expect(ms).toBeGreaterThanOrEqual(330);
  });
});

describe('sim: GPU memory', () => {
  it('reports used and total device memory, filling while the model loads', async () => {
    let now = 0;
    const { base } = await sim({ warmupMs: 1000, now: () => now, gpuMemoryBytes: 2 ** 30, gpuMemoryUtilization: 0.5 });
    const mem = async () => {
      const m = await (await fetch(`${base}/metrics`)).text();
      return [gauge(m, 'arus_sim_gpu_memory_used_bytes'), gauge(m, 'arus_sim_gpu_memory_total_bytes')];
    };
    expect(await mem()).toEqual([0, 2 ** 30]);
    now = 1000;
    expect(await mem()).toEqual([2 ** 29, 2 ** 30]);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toContain('# TYPE arus_sim_gpu_memory_used_bytes gauge');
    expect(text).toContain(`arus_sim_gpu_memory_total_bytes{model_name="${MODEL}"} 1073741824`);
  });

  it('oom: reports the device full, fails health and inference with 503, still lists and reports; clearing recovers', async () => {
    const { base } = await sim({ gpuMemoryBytes: 1000, gpuMemoryUtilization: 0.9 });
    const used = async () => gauge(await (await fetch(`${base}/metrics`)).text(), 'arus_sim_gpu_memory_used_bytes');
    expect(await used()).toBe(900);

    expect((await post(`${base}/admin/fault`, { kind: 'oom' })).status).toBe(200);
    expect(await used()).toBe(1000);
    expect((await fetch(`${base}/health`)).status).toBe(503);
    const res = await complete(base, 1);
    expect(res.status).toBe(503);
    expect((await res.json()).error.code).toBe('gpu_out_of_memory');
    expect((await post(`${base}/v1/embeddings`, { model: MODEL, input: 'x' })).status).toBe(503);
    expect((await (await fetch(`${base}/v1/models`)).json()).data).toHaveLength(1);

    expect((await post(`${base}/admin/fault`, { kind: 'none' })).status).toBe(200);
    expect(await used()).toBe(900);
    expect((await fetch(`${base}/health`)).status).toBe(200);
    expect((await complete(base, 1)).status).toBe(200);
  });
});
