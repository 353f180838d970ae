// Each strategy's distribution, and content-aware routing, through a whole
// balancer (startBalancer: pool, picker, proxy, readiness, server) in front of
// real simulated model servers on loopback.
import { afterEach, describe, expect, it } from 'vitest';
import { balancerSchema, type BalancerDoc } from '../config/schema.js';
import { silentLogger } from '../log.js';
import { createSimServer, type SimServerOptions } from '../sim/server.js';
import { startBalancer } from './role.js';

const log = silentLogger();
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function fleet(specs: (Partial<SimServerOptions> & { id: string; weight?: number; models?: string[]; kinds?: ('chat' | 'completion' | 'embeddings')[] })[], doc: Partial<BalancerDoc>) {
  const instances = [];
  for (const spec of specs) {
    const sim = createSimServer({ log, ttftMs: 5, tokensPerSecond: 1000, ...spec });
    const { port } = await sim.start();
    cleanup.push(() => sim.stop());
    instances.push({ id: spec.id, url: `http://127.0.0.1:${port}`, weight: spec.weight ?? 100, models: spec.models ?? ['llama-3-8b'], kinds: spec.kinds });
  }
  const balancer = await startBalancer({ region: 'jkt', id: 'b', doc: balancerSchema.parse({ listen: '127.0.0.1:0', slowStartMs: 0, instances, ...doc }), log });
  cleanup.push(() => balancer.stop());
  // Every instance has passed its readiness check.
  for (let i = 0; i < 100 && balancer.pool.states().some((s) => !s.ready); i++) await new Promise((r) => setTimeout(r, 50));
  expect(balancer.pool.states().every((s) => s.ready)).toBe(true);
  const url = `http://127.0.0.1:${balancer.port}`;
  const chat = async (maxTokens = 1, model = 'llama-3-8b') => {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens }),
    });
    await res.arrayBuffer();
    return { status: res.status, instance: res.headers.get('x-arus-instance') };
  };
  return { url, chat, balancer };
}

/** Waits for what must come; the deadline only keeps a broken test from hanging until vitest's own. */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const tally = (xs: (string | null)[]) => xs.reduce<Record<string, number>>((m, x) => ((m[x ?? 'none'] = (m[x ?? 'none'] ?? 0) + 1), m), {});

describe('strategies over real instances', () => {
  it('round-robin takes turns exactly, and /metrics has a latency histogram per instance', async () => {
    const { chat, url } = await fleet([{ id: 'a' }, { id: 'b' }, { id: 'c' }], { strategy: 'round-robin' });
    const seen: (string | null)[] = [];
    for (let i = 0; i < 12; i++) seen.push((await chat()).instance);
    expect(tally(seen)).toEqual({ a: 4, b: 4, c: 4 });
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const id of ['a', 'b', 'c'])
      expect(text).toMatch(new RegExp(`^arus_balancer_request_seconds_count\\{region="jkt",instance="${id}",pool="llama-3-8b",outcome="ok"\\} 4$`, 'm'));
    expect(text).toMatch(/^arus_balancer_requests_total\{region="jkt"\} 12$/m);
    expect(text).toMatch(/^arus_balancer_instances\{state="ready",region="jkt"\} 3$/m);
    expect(text).toMatch(/^arus_balancer_queue_depth\{region="jkt"\} 0$/m);
  });

  it('weighted follows the weights', async () => {
    const { chat } = await fleet([{ id: 'a', weight: 100 }, { id: 'b', weight: 200 }, { id: 'c', weight: 300 }], { strategy: 'weighted' });
    const seen: (string | null)[] = [];
    for (let i = 0; i < 60; i++) seen.push((await chat()).instance);
    expect(tally(seen)).toEqual({ a: 10, b: 20, c: 30 });
  });

  it.each(['least-outstanding', 'latency'] as const)('%s sends nothing more to an instance still busy with a request while another is free', async (strategy) => {
    // `slow` answers after a minute: what it takes stays in flight for the whole test. Each request
    // goes once the one before is answered (fast) or held (slow), so every pick sees the same thing
    // whatever the machine's timing: fast with nothing in flight, slow with what it holds.
    const { chat, balancer } = await fleet([{ id: 'fast' }, { id: 'slow', ttftMs: 60_000 }], { strategy });
    const [fast, slow] = balancer.pool.states();
    const answered: (string | null)[] = [];
    for (let i = 0; i < 20; i++) {
      const held = slow.outstanding;
      let done = false;
      chat(10).then(
        (r) => {
          answered.push(r.instance);
          done = true;
        },
        () => {}, // a request slow holds is cut when the test ends
      );
      await until(() => (done && fast.outstanding === 0) || slow.outstanding > held);
    }
    // Only the first pick, with nothing known and nothing in flight, may go to slow.
    expect(slow.outstanding).toBeLessThanOrEqual(1);
    expect(tally(answered)).toEqual({ fast: 20 - slow.outstanding });
  });

  it('gpu never picks an instance reporting memory exhaustion', async () => {
    const { chat, balancer } = await fleet([{ id: 'ok' }, { id: 'oom' }], { strategy: 'gpu' });
    const oom = balancer.pool.states().find((s) => s.instance.id === 'oom')!;
    await fetch(`${oom.instance.url}/admin/fault`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'oom' }) });
    // The next scrape sees it.
    for (let i = 0; i < 60 && !oom.gpu?.memoryExhausted && oom.ready; i++) await new Promise((r) => setTimeout(r, 50));
    const seen: (string | null)[] = [];
    const before = balancer.proxy.stats().instances.oom.requests;
    for (let i = 0; i < 10; i++) seen.push((await chat()).instance);
    expect(tally(seen)).toEqual({ ok: 10 });
    // Not one attempt reached it: a 503 retried elsewhere would still be answered by `ok`.
    expect(balancer.proxy.stats().instances.oom.requests).toBe(before);
  });

  it('content-aware: chat and embeddings go to their own pools, and a model no one serves is a 404', async () => {
    const { url, chat } = await fleet(
      [
        { id: 'chat-1', kinds: ['chat', 'completion'] },
        { id: 'embed-1', kinds: ['embeddings'], models: ['bge-m3'], model: 'bge-m3' },
      ],
      { strategy: 'least-outstanding' },
    );
    for (let i = 0; i < 4; i++) expect(await chat()).toEqual({ status: 200, instance: 'chat-1' });
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'bge-m3', input: 'hello' }) });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-arus-instance')).toBe('embed-1');
      expect(((await res.json()) as { data: unknown[] }).data).toHaveLength(1);
    }
    expect((await chat(1, 'bge-m3')).status).toBe(404);
    expect((await chat(1, 'gpt-9')).status).toBe(404);
  });
});
