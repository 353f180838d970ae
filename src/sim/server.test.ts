import { get } from 'node:http';
import { readSse } from './sse.case.js';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { createSimServer, type SimServer, type SimServerOptions } from './server.js';

const MODEL = 'llama-3-8b';
const servers: SimServer[] = [];

async function sim(opts: Partial<SimServerOptions> = {}): Promise<{ s: SimServer; base: string; port: number }> {
  const s = createSimServer({ log: silentLogger(), ttftMs: 5, tokensPerSecond: 1000, ...opts });
  servers.push(s);
  const { port } = await s.start();
  return { s, base: `http://127.0.0.1:${port}`, port };
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

const post = (url: string, body: unknown, signal?: AbortSignal) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });

const chat = (extra: object = {}) => ({ model: MODEL, messages: [{ role: 'user', content: 'say something' }], ...extra });

/** Resolves with the socket error code when a fresh TCP connect fails, or 'connected'. */
function tcpConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve('connected');
    });
    sock.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** A GET on a new connection: fetch's pool may still hold a socket the crash cut. */
function statusOnFreshConnection(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    }).once('error', reject);
  });
}

function gauge(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`));
  if (!line) throw new Error(`no ${name} in metrics`);
  return Number(line.split(' ').at(-1));
}

describe('sim: warm-up', () => {
  it('answers 503 and lists no model while loading, then 200 with the model listed', async () => {
    let now = 1_000_000;
    const { base } = await sim({ warmupMs: 30_000, now: () => now });
    expect((await fetch(`${base}/health`)).status).toBe(503);
    expect((await (await fetch(`${base}/v1/models`)).json()).data).toEqual([]);
    expect((await post(`${base}/v1/chat/completions`, chat())).status).toBe(503);

    now += 29_999;
    expect((await fetch(`${base}/health`)).status).toBe(503);
    now += 1;
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const models = await (await fetch(`${base}/v1/models`)).json();
    expect(models.data.map((m: { id: string }) => m.id)).toEqual([MODEL]);
    expect((await post(`${base}/v1/chat/completions`, chat())).status).toBe(200);
  });

  it('loads in real time too', async () => {
    const { base } = await sim({ warmupMs: 200 });
    const t0 = performance.now();
    let status = 503;
    while (status === 503) status = (await fetch(`${base}/health`)).status;
    expect(status).toBe(200);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(150);
  });
});

describe('sim: completions', () => {
  it('answers a chat completion after ttft + (n-1) token intervals, with usage', async () => {
    const { base } = await sim({ ttftMs: 60, tokensPerSecond: 100 });
    const t0 = performance.now();
    const res = await post(`${base}/v1/chat/completions`, chat({ max_tokens: 10 }));
    const elapsed = performance.now() - t0;
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.object).toBe('chat.completion');
    expect(body.model).toBe(MODEL);
    expect(body.choices[0].message.role).toBe('assistant');
    expect(body.choices[0].message.content.split(' ')).toHaveLength(10);
    // The prompt as rendered for the cache, "user\nsay something\n": 19 characters, 5 tokens of 4.
    expect(body.usage).toEqual({ prompt_tokens: 5, completion_tokens: 10, total_tokens: 15, prompt_tokens_details: { cached_tokens: 0 } });
    expect(elapsed).toBeGreaterThanOrEqual(60 + 9 * 10 - 5);
  });

  it('answers a text completion', async () => {
    const { base } = await sim();
    const body = await (await post(`${base}/v1/completions`, { model: MODEL, prompt: 'once upon', max_tokens: 3 })).json();
    expect(body.object).toBe('text_completion');
    expect(body.choices[0].text).toBe('The model answers');
    expect(body.usage.completion_tokens).toBe(3);
  });

  it('streams SSE chunk by chunk on the token clock, then [DONE]', async () => {
    const { base } = await sim({ ttftMs: 50, tokensPerSecond: 20 });
    const t0 = performance.now();
    const res = await post(`${base}/v1/chat/completions`, chat({ max_tokens: 5, stream: true }));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');

    const events = await readSse(res, t0);
    expect(events.at(-1)!.data).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => ({ at: e.at, json: JSON.parse(e.data) }));
    expect(chunks).toHaveLength(6); // 5 tokens and the closing chunk
    expect(chunks[0].json.choices[0].delta).toEqual({ role: 'assistant', content: 'The' });
    expect(chunks.slice(0, 5).map((c) => c.json.choices[0].delta.content).join('')).toBe('The model answers from a');
    expect(chunks[5].json.choices[0].finish_reason).toBe('length');
    expect(chunks[5].json.usage.completion_tokens).toBe(5);
    // On the token clock (never early): token i is due at 50 + 50·i ms.
    expect(chunks[0].at).toBeGreaterThanOrEqual(45);
    expect(chunks[4].at).toBeGreaterThanOrEqual(245);

    // Chunk by chunk: the first is out while the rest is still being generated (5 s of it here); a reply
    // buffered to the end would come whole, with nothing running any more. No stopwatch: a busy machine
    // moves when chunks arrive, not what runs when the first is read.
    const long = await post(`${base}/v1/chat/completions`, chat({ max_tokens: 100, stream: true }));
    const reader = long.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toMatch(/^data: /);
    expect(gauge(await (await fetch(`${base}/metrics`)).text(), 'vllm:num_requests_running')).toBe(1);
    await reader.cancel();
  });

  it('rejects an unknown model with 404 and a bad body with 400', async () => {
    const { base } = await sim();
    const res = await post(`${base}/v1/chat/completions`, { ...chat(), model: 'gpt-9' });
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe('model_not_found');
    const bad = await post(`${base}/v1/chat/completions`, { model: MODEL });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.message).toMatch(/^messages: /);
    const notJson = await fetch(`${base}/v1/completions`, { method: 'POST', body: '{' });
    expect(notJson.status).toBe(400);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/v1/completions`)).status).toBe(405);
  });
});

describe('sim: metrics', () => {
  it('reports running, waiting and KV-cache usage as vLLM gauges', async () => {
    const { base } = await sim({ maxRunning: 2, ttftMs: 10, tokensPerSecond: 20 });
    const metrics = async () => (await fetch(`${base}/metrics`)).text();
    const idle = await metrics();
    expect(idle).toContain('# TYPE vllm:num_requests_running gauge');
    expect(idle).toContain(`vllm:num_requests_running{model_name="${MODEL}"} 0`);
    expect(gauge(idle, 'vllm:num_requests_waiting')).toBe(0);
    expect(gauge(idle, 'vllm:kv_cache_usage_perc')).toBe(0);

    const ac = new AbortController();
    const inflight = [1, 2, 3].map(() => post(`${base}/v1/completions`, { model: MODEL, prompt: 'x', max_tokens: 200 }, ac.signal).catch(() => {}));
    let busy = idle;
    while (gauge(busy, 'vllm:num_requests_running') + gauge(busy, 'vllm:num_requests_waiting') < 3) busy = await metrics();
    expect(gauge(busy, 'vllm:num_requests_running')).toBe(2);
    expect(gauge(busy, 'vllm:num_requests_waiting')).toBe(1);
    expect(gauge(busy, 'vllm:kv_cache_usage_perc')).toBe(1);

    // Clients that give up free their slots and their place in the queue.
    ac.abort();
    await Promise.all(inflight);
    let after = busy;
    for (let i = 0; i < 100 && gauge(after, 'vllm:num_requests_running') + gauge(after, 'vllm:num_requests_waiting') > 0; i++) {
      await sleep(10);
      after = await metrics();
    }
    expect(gauge(after, 'vllm:num_requests_running')).toBe(0);
    expect(gauge(after, 'vllm:num_requests_waiting')).toBe(0);
  });

  it('serves queued requests as slots free up', async () => {
    const { base } = await sim({ maxRunning: 1, ttftMs: 30, tokensPerSecond: 1000 });
    const t0 = performance.now();
    const res = await Promise.all([1, 2, 3].map(() => post(`${base}/v1/completions`, { model: MODEL, prompt: 'x', max_tokens: 1 })));
    expect(res.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(85); // one after another: 3 × 30 ms
  });

  it('frees the slot when a streaming client disconnects', async () => {
    const { base } = await sim({ tokensPerSecond: 10 });
    const ac = new AbortController();
    const res = await post(`${base}/v1/chat/completions`, chat({ max_tokens: 100, stream: true }), ac.signal);
    await res.body!.getReader().read();
    expect(gauge(await (await fetch(`${base}/metrics`)).text(), 'vllm:num_requests_running')).toBe(1);
    ac.abort();
    let running = 1;
    for (let i = 0; i < 200 && running > 0; i++) {
      await sleep(10);
      running = gauge(await (await fetch(`${base}/metrics`)).text(), 'vllm:num_requests_running');
    }
    expect(running).toBe(0);
  });
});

describe('sim: faults', () => {
  it('error: fails every request, /health included, with 500 at rate 1, and none at rate 0', async () => {
    const { s, base } = await sim();
    await s.setFault({ kind: 'error' });
    for (const path of ['/health', '/v1/models', '/metrics']) expect((await fetch(`${base}${path}`)).status).toBe(500);
    expect((await post(`${base}/v1/chat/completions`, chat())).status).toBe(500);
    await s.setFault({ kind: 'error', rate: 0 });
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });

  it('error: fails about `rate` of requests', async () => {
    const { s, base } = await sim();
    await s.setFault({ kind: 'error', rate: 0.3 });
    const statuses = await Promise.all(Array.from({ length: 400 }, () => fetch(`${base}/health`).then((r) => r.status)));
    const failed = statuses.filter((st) => st === 500).length;
    expect(statuses.filter((st) => st !== 500 && st !== 200)).toEqual([]);
    expect(failed).toBeGreaterThan(70); // 120 expected; these bounds are > 5 standard deviations out
    expect(failed).toBeLessThan(170);
  });

  it('uses the injected random source for the rate', async () => {
    const draws = [0.1, 0.9, 0.49, 0.5];
    const { s, base } = await sim({ random: () => draws.shift()! });
    await s.setFault({ kind: 'error', rate: 0.5 });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await fetch(`${base}/health`)).status);
    expect(statuses).toEqual([500, 200, 500, 200]);
  });

  it('is set and read through POST/GET /admin/fault, which faults never touch', async () => {
    const { base } = await sim();
    expect((await post(`${base}/admin/fault`, { kind: 'error', rate: 1 })).status).toBe(200);
    expect((await fetch(`${base}/health`)).status).toBe(500);
    expect(await (await fetch(`${base}/admin/fault`)).json()).toEqual({ kind: 'error', rate: 1 });
    const bad = await post(`${base}/admin/fault`, { kind: 'melt' });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.message).toMatch(/^kind: /);
    expect((await post(`${base}/admin/fault`, { kind: 'none' })).status).toBe(200);
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });

  it('hang: never answers, until the fault is cleared', async () => {
    const { s, base } = await sim();
    await s.setFault({ kind: 'hang' });
    await expect(fetch(`${base}/health`, { signal: AbortSignal.timeout(200) })).rejects.toThrow(/aborted due to timeout/);
    await s.setFault({ kind: 'none' });
    expect((await fetch(`${base}/health`, { signal: AbortSignal.timeout(5000) })).status).toBe(200);
  });

  it('slow: delays each answer by delayMs', async () => {
    const { s, base } = await sim();
    await s.setFault({ kind: 'slow', delayMs: 150 });
    const t0 = performance.now();
    expect((await fetch(`${base}/health`)).status).toBe(200);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(145);
  });

  it('crash: refuses connections and cuts open streams; clearing it restarts on the same port with a fresh warm-up', async () => {
    const { s, base, port } = await sim({ tokensPerSecond: 10 });
    const stream = await post(`${base}/v1/chat/completions`, chat({ max_tokens: 100, stream: true }));
    const reader = stream.body!.getReader();
    await reader.read();

    const res = await post(`${base}/admin/fault`, { kind: 'crash' });
    expect(res.status).toBe(200);
    await expect.poll(() => s.port, { timeout: 5000, interval: 5 }).toBeUndefined(); // it dies once the answer is out
    expect(await tcpConnect(port)).toBe('ECONNREFUSED');
    await expect(
      (async () => {
        for (;;) if ((await reader.read()).done) throw new Error('stream ended cleanly');
      })(),
    ).rejects.toThrow(/terminated|other side closed|ended cleanly/);
    expect(s.port).toBeUndefined();

    await s.setFault({ kind: 'none' });
    expect(s.port).toBe(port);
    expect(await tcpConnect(port)).toBe('connected');
  });

  it('crash then restart loads the model again', async () => {
    // A warm-up long enough that a loaded machine cannot let it pass between the restart and the check.
    const { s, base } = await sim({ warmupMs: 1500 });
    await sleep(1550);
    expect((await fetch(`${base}/health`)).status).toBe(200);
    await s.setFault({ kind: 'crash' });
    await s.setFault({ kind: 'none' });
    expect(await statusOnFreshConnection(`${base}/health`)).toBe(503);
  });
});
