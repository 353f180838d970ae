// The stale cache: deterministic requests answered from kept answers, marked
// `x-arus-cache: stale`, when nothing else can serve them. Real simulated
// model servers behind a whole balancer (startBalancer) on loopback, and the
// cache's bounds on its own.
import { afterEach, describe, expect, it } from 'vitest';
import { balancerSchema, type BalancerDoc } from '../config/schema.js';
import { staleCacheSchema } from '../config/scaling-schema.js';
import { silentLogger } from '../log.js';
import { createSimServer, type SimServer, type SimServerOptions } from '../sim/server.js';
import { createStaleCache } from './proxy/stale-cache.js';
import { startBalancer } from './role.js';

const BIG = 'llama-3-70b';
const SMALL = 'llama-3-8b';
const log = silentLogger();
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

type Spec = Partial<SimServerOptions> & { id: string; model?: string };

/** Sims (SMALL unless a spec names its model) behind a balancer made from `doc`; every instance ready. */
async function fleet(specs: Spec[], doc: Record<string, unknown> = {}) {
  const sims: Record<string, SimServer> = {};
  const instances = [];
  for (const spec of specs) {
    const model = spec.model ?? SMALL;
    const sim = createSimServer({ log, ttftMs: 5, tokensPerSecond: 1000, ...spec, model });
    const { port } = await sim.start();
    cleanup.push(() => sim.stop());
    sims[spec.id] = sim;
    instances.push({ id: spec.id, url: `http://127.0.0.1:${port}`, weight: 100, models: [model] });
  }
  const parsed: BalancerDoc = balancerSchema.parse({ slowStartMs: 0, strategy: 'least-outstanding', instances, ...doc });
  const balancer = await startBalancer({ region: 'jkt', id: 'b', doc: parsed, log, listen: { address: '127.0.0.1', port: 0 } });
  cleanup.push(() => balancer.stop());
  await until(() => balancer.pool.states().every((s) => s.ready));
  const url = `http://127.0.0.1:${balancer.port}`;
  /** Crashes these sims and waits for the readiness checks to take them out. */
  const crash = async (...ids: string[]) => {
    for (const id of ids) await sims[id].setFault({ kind: 'crash' });
    await until(() => balancer.pool.states().every((s) => !ids.includes(s.instance.id) || !s.ready));
  };
  return { url, sims, balancer, crash };
}

/** Waits for what must come; the deadline only keeps a broken test from hanging until vitest's own. */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

type Answer = { status: number; body: string; h: (name: string) => string | null };

async function post(url: string, body: Record<string, unknown>, headers: Record<string, string> = {}, path = '/v1/chat/completions'): Promise<Answer> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.text(), h: (name) => res.headers.get(name) };
}

const chat = (model: string, content: string, extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content }], max_tokens: 3, ...extra });
const code = (a: Answer) => (JSON.parse(a.body) as { error: { code: string } }).error.code;

function expectStale(a: Answer, body: string, model: string): void {
  expect(a.status).toBe(200);
  expect(a.h('x-arus-cache')).toBe('stale');
  expect(a.h('x-arus-cache-model')).toBe(model);
  expect(Number(a.h('age'))).toBeGreaterThanOrEqual(0);
  expect(a.h('x-arus-instance')).toBeNull();
  expect(a.body).toBe(body);
}

function expect503(a: Answer, errCode: string): void {
  expect(a.status).toBe(503);
  expect(a.h('retry-after')).toMatch(/^\d+$/);
  expect(a.h('x-arus-cache')).toBeNull();
  expect(code(a)).toBe(errCode);
}

describe('stale cache (real sims)', () => {
  it('with the pool down, a cached deterministic request is answered stale; an uncached or non-deterministic one gets 503 with Retry-After', async () => {
    const { url, balancer, crash } = await fleet([{ id: 'a' }, { id: 'b' }], { staleCache: { [SMALL]: {} } });
    const t0 = chat(SMALL, 'hello', { temperature: 0 });
    const fresh = await post(url, t0);
    expect(fresh.status).toBe(200);
    expect(fresh.h('x-arus-cache')).toBeNull();
    expect(fresh.h('x-arus-instance')).toMatch(/^[ab]$/);
    // Served by an instance: a non-deterministic request is not kept either.
    expect((await post(url, chat(SMALL, 'hello', { temperature: 0.7 }))).status).toBe(200);

    await crash('a', 'b');
    const stale = await post(url, t0);
    expectStale(stale, fresh.body, SMALL);
    expect(stale.h('content-type')).toBe(fresh.h('content-type'));
    expect((JSON.parse(stale.body) as { model: string }).model).toBe(SMALL);
    expect503(await post(url, chat(SMALL, 'hello', { temperature: 0.7 })), 'no_ready_instance');
    expect503(await post(url, chat(SMALL, 'never asked', { temperature: 0 })), 'no_ready_instance');
    // No temperature is not temperature 0.
    expect503(await post(url, chat(SMALL, 'hello')), 'no_ready_instance');
    const st = balancer.proxy.stats();
    expect(st.staleServed).toBe(1);
    expect(st.staleMisses).toBe(1); // the temperature-0 request never seen; the others were not cacheable
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/^arus_balancer_stale_served_total\{[^}]*\} 1$/m);
    expect(metrics).toMatch(/^arus_balancer_stale_misses_total\{[^}]*\} 1$/m);
  });

  it('is never used while an instance can serve: with one of two down, the live one answers', async () => {
    const { url, balancer, crash } = await fleet([{ id: 'a' }, { id: 'b' }], { staleCache: { [SMALL]: {} } });
    const t0 = chat(SMALL, 'hello', { temperature: 0 });
    expect((await post(url, t0)).status).toBe(200);
    await crash('a');
    for (let i = 0; i < 5; i++) {
      const res = await post(url, t0);
      expect(res.status).toBe(200);
      expect(res.h('x-arus-instance')).toBe('b');
      expect(res.h('x-arus-cache')).toBeNull();
    }
    expect(balancer.proxy.stats().staleServed).toBe(0);
  });

  it('a fallback model that can serve goes first; its answer is not kept in place of the model’s own', async () => {
    const { url, crash } = await fleet([{ id: 'big', model: BIG }, { id: 'small' }], { fallbacks: { [BIG]: SMALL }, staleCache: { [BIG]: {} } });
    const t0 = chat(BIG, 'hello', { temperature: 0 });
    const fresh = await post(url, t0);
    expect(fresh.h('x-arus-instance')).toBe('big');
    await crash('big');
    const degraded = await post(url, t0);
    expect(degraded.status).toBe(200);
    expect(degraded.h('x-arus-fallback')).toBe(`${BIG} -> ${SMALL}`);
    expect(degraded.h('x-arus-cache')).toBeNull();
    expect((JSON.parse(degraded.body) as { model: string }).model).toBe(SMALL);
    // The fallback down too: the model's own answer, not the fallback's.
    await crash('small');
    expectStale(await post(url, t0), fresh.body, BIG);
  });

  it('the queue full: a cached request is answered stale, an uncached one gets 503 overloaded, and a free slot serves again', async () => {
    const { url, balancer } = await fleet([{ id: 'a', tokensPerSecond: 100 }], { maxConcurrentPerInstance: 1, maxQueue: 0, staleCache: { [SMALL]: {} } });
    const t0 = chat(SMALL, 'hello', { temperature: 0 });
    const fresh = await post(url, t0);
    expect(fresh.status).toBe(200);
    // A long generation holds the only slot (~2 s).
    const holder = post(url, chat(SMALL, 'a long story', { max_tokens: 200 }));
    await until(() => balancer.pool.states()[0].outstanding === 1);
    expectStale(await post(url, t0), fresh.body, SMALL);
    expect503(await post(url, chat(SMALL, 'hello', { temperature: 0.7 })), 'overloaded');
    expect((await holder).status).toBe(200);
    const again = await post(url, t0);
    expect(again.h('x-arus-instance')).toBe('a');
    expect(again.h('x-arus-cache')).toBeNull();
    expect(balancer.proxy.stats()).toMatchObject({ staleServed: 1, overloaded: 1 });
  });

  it('is off by default: nothing is served stale, and the stats have no stale counts', async () => {
    const { url, balancer, crash } = await fleet([{ id: 'a' }]);
    const t0 = chat(SMALL, 'hello', { temperature: 0 });
    expect((await post(url, t0)).status).toBe(200);
    await crash('a');
    expect503(await post(url, t0), 'no_ready_instance');
    expect(balancer.proxy.stats()).not.toHaveProperty('staleServed');
    expect(balancer.proxy.stats()).not.toHaveProperty('staleMisses');
  });

  it('an entry past its TTL is not served', async () => {
    const { url, crash } = await fleet([{ id: 'a' }], { staleCache: { [SMALL]: { ttlMs: 1000 } } });
    const t0 = chat(SMALL, 'hello', { temperature: 0 });
    const fresh = await post(url, t0);
    const stored = performance.now();
    await crash('a');
    if (performance.now() - stored < 800) expectStale(await post(url, t0), fresh.body, SMALL);
    await new Promise((r) => setTimeout(r, Math.max(0, stored + 1100 - performance.now())));
    expect503(await post(url, t0), 'no_ready_instance');
  });

  it('keyHeader names the entry whatever the body; another authorization never shares it', async () => {
    const { url, crash } = await fleet([{ id: 'a' }], { staleCache: { [SMALL]: { keyHeader: 'x-cache-key' } } });
    const mine = { 'x-cache-key': 'faq-42', authorization: 'Bearer alice' };
    const fresh = await post(url, chat(SMALL, 'what are your hours?', { temperature: 0.7 }), mine);
    expect(fresh.status).toBe(200);
    // Without the header, temperature 0 still makes a request cacheable, keyed by its body.
    const plain = await post(url, chat(SMALL, 'hello', { temperature: 0 }));
    await crash('a');
    expectStale(await post(url, chat(SMALL, 'when do you open?', { temperature: 1 }), mine), fresh.body, SMALL);
    expect503(await post(url, chat(SMALL, 'what are your hours?', { temperature: 0.7 }), { ...mine, authorization: 'Bearer bob' }), 'no_ready_instance');
    expect503(await post(url, chat(SMALL, 'what are your hours?', { temperature: 0.7 }), { 'x-cache-key': 'faq-42' }), 'no_ready_instance');
    expect503(await post(url, chat(SMALL, 'what are your hours?', { temperature: 0.7 }), { ...mine, 'x-cache-key': 'faq-43' }), 'no_ready_instance');
    expectStale(await post(url, chat(SMALL, 'hello', { temperature: 0 })), plain.body, SMALL);
  });

  it('a streamed answer is kept whole and replayed as the same SSE bytes', async () => {
    const { url, crash } = await fleet([{ id: 'a' }], { staleCache: { [SMALL]: {} } });
    const t0 = chat(SMALL, 'hello', { temperature: 0, stream: true, max_tokens: 8 });
    const fresh = await post(url, t0);
    expect(fresh.h('content-type')).toMatch(/^text\/event-stream/);
    expect(fresh.body).toContain('data: [DONE]');
    expect(fresh.body.match(/^data: /gm)!.length).toBeGreaterThan(3);
    await crash('a');
    const stale = await post(url, t0);
    expectStale(stale, fresh.body, SMALL);
    expect(stale.h('content-type')).toBe(fresh.h('content-type'));
  });

  it('batched embeddings with a key header are kept per caller and served stale', async () => {
    const { url, crash } = await fleet([{ id: 'a' }], { batching: { embeddings: { windowMs: 20 } }, staleCache: { [SMALL]: { keyHeader: 'x-cache-key' } } });
    const one = (input: string, key: string) => post(url, { model: SMALL, input }, { 'x-cache-key': key }, '/v1/embeddings');
    const [x, y] = await Promise.all([one('first text', 'x'), one('second, longer text', 'y')]);
    expect([x.status, y.status]).toEqual([200, 200]);
    expect(x.body).not.toBe(y.body);
    await crash('a');
    expectStale(await one('anything', 'y'), y.body, SMALL);
    expectStale(await one('anything', 'x'), x.body, SMALL);
  });

  it('a configuration without the cache drops its entries', async () => {
    const { url, balancer, crash } = await fleet([{ id: 'a' }], { staleCache: { [SMALL]: {} } });
    const t0 = chat(SMALL, 'hello', { temperature: 0 });
    const fresh = await post(url, t0);
    await crash('a');
    expectStale(await post(url, t0), fresh.body, SMALL);
    const rest = { ...balancer.doc, staleCache: undefined };
    balancer.reconfigure(balancerSchema.parse(rest));
    expect503(await post(url, t0), 'no_ready_instance');
    // Back on: a new, empty cache.
    balancer.reconfigure(balancerSchema.parse({ ...rest, staleCache: { [SMALL]: {} } }));
    expect503(await post(url, t0), 'no_ready_instance');
    // The counts only grow, whatever the configuration.
    expect(balancer.proxy.stats()).toMatchObject({ staleServed: 1, staleMisses: 1 });
  });
});

describe('createStaleCache', () => {
  const doc = (o: Record<string, unknown> = {}) => staleCacheSchema.parse(o);
  const answer = (text: string, status = 200) => ({ status, contentType: 'application/json', chunks: [Buffer.from(text.slice(0, 3)), Buffer.from(text.slice(3))], bytes: Buffer.byteLength(text) });
  const body = (o: Record<string, unknown>) => Buffer.from(JSON.stringify(o));
  const keyOf = (c: ReturnType<typeof createStaleCache>, o: Record<string, unknown>, headers: Record<string, string> = {}, path = '/v1/chat/completions') =>
    c.keyOf(String(o.model), path, headers, body(o), o);

  it('keys only deterministic requests of a model with a cache, apart by path, model, credential and body', () => {
    const c = createStaleCache({ m: doc() });
    const base = { model: 'm', temperature: 0, prompt: 'hi' };
    expect(keyOf(c, { ...base, model: 'other' })).toBeUndefined();
    expect(keyOf(c, { ...base, temperature: 0.1 })).toBeUndefined();
    expect(keyOf(c, { model: 'm', prompt: 'hi' })).toBeUndefined();
    const k = keyOf(c, base)!;
    expect(k).toMatch(/^[\w-]{43}$/);
    expect(keyOf(c, base)).toBe(k);
    const others = [keyOf(c, base, {}, '/v1/completions'), keyOf(c, base, { authorization: 'Bearer x' }), keyOf(c, { ...base, prompt: 'ho' }), keyOf(c, base, { 'x-cache-key': 'k' })];
    expect(others.slice(0, 3).every((o) => o !== undefined && o !== k)).toBe(true);
    expect(others[3]).toBe(k); // not the key header: this model has none
  });

  it('with a key header, its value names the entry and makes any request cacheable', () => {
    const c = createStaleCache({ m: doc({ keyHeader: 'x-cache-key' }) });
    const a = keyOf(c, { model: 'm', temperature: 0.9, prompt: 'a' }, { 'x-cache-key': 'k1' });
    expect(a).toBeDefined();
    expect(keyOf(c, { model: 'm', prompt: 'b' }, { 'x-cache-key': 'k1' })).toBe(a);
    expect(keyOf(c, { model: 'm', prompt: 'b' }, { 'x-cache-key': 'k2' })).not.toBe(a);
    expect(keyOf(c, { model: 'm', prompt: 'b' }, { 'x-cache-key': 'k1', authorization: 'Bearer b' })).not.toBe(a);
    expect(keyOf(c, { model: 'm', temperature: 0.9, prompt: 'a' }, { 'x-cache-key': '' })).toBeUndefined();
  });

  it('keeps whole 200 answers within an eighth of maxBytes, and serves them with their age until the TTL', () => {
    let t = 10_000;
    const c = createStaleCache({ m: doc({ ttlMs: 2000, maxBytes: 8192 }) }, { perf: { now: () => t } });
    c.store('m', 'ok', answer('{"a":1}'));
    c.store('m', 'err', answer('{"e":1}', 500));
    c.store('m', 'big', answer('x'.repeat(1025)));
    c.store('m', 'fits', answer('x'.repeat(1024)));
    c.store('other', 'ok', answer('{"a":1}'));
    expect(c.lookup('m', 'err')).toBeUndefined();
    expect(c.lookup('m', 'big')).toBeUndefined();
    expect(c.lookup('m', 'fits')!.body.length).toBe(1024);
    expect(c.lookup('other', 'ok')).toBeUndefined();
    t += 1500;
    const hit = c.lookup('m', 'ok')!;
    expect(hit.body.toString()).toBe('{"a":1}');
    expect(hit).toMatchObject({ status: 200, contentType: 'application/json', ageMs: 1500 });
    t += 501;
    expect(c.lookup('m', 'ok')).toBeUndefined();
    expect(c.stats()).toMatchObject({ served: 2, misses: 4 });
  });

  it('holds at most maxEntries, evicting the least recently used, and at most maxBytes', () => {
    const c = createStaleCache({ m: doc({ maxEntries: 3 }), n: doc({ maxBytes: 4096 }) });
    for (const k of ['a', 'b', 'c']) c.store('m', k, answer(`"${k}"`));
    expect(c.lookup('m', 'a')).toBeDefined(); // a is now the most recent
    c.store('m', 'd', answer('"d"'));
    expect(c.stats().models.m.entries).toBe(3);
    expect(c.lookup('m', 'b')).toBeUndefined();
    for (const k of ['a', 'c', 'd']) expect(c.lookup('m', k)).toBeDefined();
    for (let i = 0; i < 20; i++) c.store('n', `k${i}`, answer('y'.repeat(500)));
    expect(c.stats().models.n.bytes).toBeLessThanOrEqual(4096);
    expect(c.stats().models.n.entries).toBe(8);
    expect(c.lookup('n', 'k19')).toBeDefined();
    expect(c.lookup('n', 'k0')).toBeUndefined();
  });

  it('configure: an unchanged model keeps its entries, a changed one starts empty, a removed one is dropped', () => {
    const c = createStaleCache({ a: doc(), b: doc(), r: doc() });
    for (const m of ['a', 'b', 'r']) c.store(m, 'k', answer('"v"'));
    c.configure({ a: doc(), b: doc({ ttlMs: 5000 }), n: doc() });
    expect(c.lookup('a', 'k')).toBeDefined();
    expect(c.lookup('b', 'k')).toBeUndefined();
    expect(c.lookup('r', 'k')).toBeUndefined();
    expect(Object.keys(c.stats().models).sort()).toEqual(['a', 'b', 'n']);
    expect(keyOf(c, { model: 'r', temperature: 0 })).toBeUndefined();
    c.configure({});
    expect(c.configured).toBe(false);
    expect(keyOf(c, { model: 'a', temperature: 0 })).toBeUndefined();
  });
});
