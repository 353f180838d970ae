// `arus balancer` follows its region's balancer section live: in front of two
// simulated model servers, a long streaming generation open on sim A, the
// section replaced through the API with sim B only. The open stream finishes
// on A with every token; the balancer picks the change up within a second
// (it polls the section, a 304 while it is unchanged), and every request
// from then on goes to B. No restart. Its /healthz shows the new set.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/log.js';
import { createSimServer, type SimServer } from '../src/sim/server.js';
import { startArus, tempDir, until, type Running } from './helpers/arus.js';
import { createToken } from './helpers/credentials.js';
import { regionsWithChecks } from './helpers/regions.js';

const ADMIN = 'live-admin';
const env = { ARUS_ADMIN_TOKEN: ADMIN };
/** The open stream: 80 tokens at 20 a second, about 4 s: the change happens while it runs. */
const STREAM_TOKENS = 80;

type Sent = { at: number; instance: string | null; status: number };

describe('arus balancer follows its configuration live', () => {
  const sims: SimServer[] = [];
  const procs: Running[] = [];
  let control: Running;
  let balancer: Running;
  let base: string;
  const instance = (i: number) => ({ id: `bkk-${i + 1}`, url: `http://127.0.0.1:${sims[i].port}`, models: ['llama-3-8b'] });

  const api = (path: string, init: { method?: string; body?: unknown } = {}) =>
    fetch(`${control.api}${path}`, { method: init.method ?? 'GET', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: init.body === undefined ? undefined : JSON.stringify(init.body) });
  const chat = (maxTokens: number, stream = false) =>
    fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama-3-8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens, stream }),
    });
  const short = async (): Promise<Sent> => {
    const at = Date.now();
    const res = await chat(1);
    await res.arrayBuffer();
    return { at, instance: res.headers.get('x-arus-instance'), status: res.status };
  };
  const healthz = async () => (await (await fetch(`${base}/healthz`)).json()) as { ok: boolean; control: { connected: boolean; url: string }; instances: { ready: number; total: number } };

  beforeAll(async () => {
    for (let i = 0; i < 2; i++) {
      const sim = createSimServer({ log: silentLogger(), ttftMs: 5, tokensPerSecond: 20 });
      await sim.start();
      sims.push(sim);
    }
    const dir = tempDir('arus-balancer-live-');
    const regions = regionsWithChecks(dir, () => undefined);
    const file = join(regions, 'bkk.yaml');
    writeFileSync(
      file,
      `${readFileSync(file, 'utf8')}balancer:
  listen: "127.0.0.1:0"
  strategy: round-robin
  slowStartMs: 0
  instances:
${[0, 1].map((i) => `    - { id: ${instance(i).id}, url: "${instance(i).url}", models: [llama-3-8b] }`).join('\n')}
`,
    );
    const db = join(dir, 'arus.db');
    const token = createToken(db, { role: 'balancer', region: 'bkk' });
    control = await startArus(['control', '--db', db, '--regions', regions, '--api-listen', '127.0.0.1:0'], { env, timeoutMs: 30_000 });
    procs.push(control);
    balancer = await startArus(['balancer', '--control', control.api!, '--token', token, '--id', 'bkk-lb-1'], { timeoutMs: 30_000 });
    procs.push(balancer);
    base = `http://127.0.0.1:${balancer.logs.find((l) => l.msg === 'balancer listening')!.port as number}`;
  }, 60_000);

  afterAll(async () => {
    for (const p of procs.reverse()) await p.stop();
    await Promise.all(sims.map((s) => s.stop()));
  });

  it('lets a stream open on A finish with every token, and sends every request to B within a second of the change', async () => {
    await until(healthz, (h) => h.instances.ready === 2, 15_000, 100);
    expect(await healthz()).toEqual({ ok: true, region: 'bkk', control: { connected: true, url: control.api }, instances: { ready: 2, total: 2 } });

    // A long generation on A (round-robin: at most one try lands on B, which is let go).
    let open: Response | undefined;
    for (let i = 0; i < 4 && !open; i++) {
      const res = await chat(STREAM_TOKENS, true);
      if (res.headers.get('x-arus-instance') === 'bkk-1') open = res;
      else await res.body?.cancel();
    }
    expect(open, 'a stream on bkk-1').toBeDefined();
    const reader = open!.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value);
    // Read the rest while the change happens.
    const rest = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += decoder.decode(value, { stream: true });
      }
    })();

    const region = (await (await api('/v1/regions/bkk')).json()) as { balancer: { instances: unknown[] } };
    region.balancer.instances = [instance(1)];
    const put = await api('/v1/regions/bkk', { method: 'PUT', body: region });
    expect(put.status, await put.clone().text()).toBe(200);
    const acked = Date.now();

    // Requests one after another from the acknowledgment on (round-robin: A and B in turn until the change
    // applies), until 1.5 s have passed and the last five went to B; 5 s at most.
    const sent: Sent[] = [];
    const settled = () => Date.now() > acked + 1500 && sent.length >= 5 && sent.slice(-5).every((s) => s.instance === 'bkk-2');
    while (Date.now() < acked + 5000 && !settled()) sent.push(await short());
    const lastA = sent.map((s) => s.instance).lastIndexOf('bkk-1');
    const switched = sent[lastA + 1];
    expect(switched, `only bkk-2 after some point within 5 s; the last: ${JSON.stringify(sent.slice(-3))}`).toBeDefined();
    console.log(`balancer section change: every request on the new set from ${switched.at - acked} ms after the write was acknowledged (${lastA + 1} of ${sent.length} requests before)`);
    // Every request sent a second or more after the acknowledgment went to B, and was answered.
    const late = sent.filter((s) => s.at >= acked + 1000);
    expect(late.length).toBeGreaterThan(0);
    expect(late.every((s) => s.instance === 'bkk-2' && s.status === 200), JSON.stringify(late)).toBe(true);

    // The stream that started on A ran to its end on A.
    await rest;
    const tokens = text
      .split('\n')
      .filter((l) => l.startsWith('data: {'))
      .map((l) => JSON.parse(l.slice(6)) as { choices: { delta?: { content?: string } }[] })
      .filter((c) => c.choices[0]?.delta?.content).length;
    expect(tokens).toBe(STREAM_TOKENS);
    expect(text).toContain('data: [DONE]');

    expect(balancer.logs.find((l) => l.msg === 'balancer reconfigured')).toMatchObject({ added: [], removed: ['bkk-1'] });
    expect(await healthz()).toMatchObject({ ok: true, control: { connected: true }, instances: { ready: 1, total: 1 } });
    // No restart: the same process, its first ready line only.
    expect(balancer.proc.exitCode).toBeNull();
    expect(balancer.logs.filter((l) => l.msg === 'ready')).toHaveLength(1);
  });

  it('warns that a new listen address needs a restart, and keeps serving where it listens', async () => {
    const region = (await (await api('/v1/regions/bkk')).json()) as { balancer: { listen: string; instances: unknown[] } };
    region.balancer.listen = '127.0.0.1:1';
    region.balancer.instances = [instance(0), instance(1)];
    expect((await api('/v1/regions/bkk', { method: 'PUT', body: region })).status).toBe(200);
    await until(() => balancer.logs.find((l) => typeof l.msg === 'string' && /only a restart of the balancer applies them/.test(l.msg)), (l) => l !== undefined, 5000, 50);
    await until(healthz, (h) => h.instances.total === 2 && h.instances.ready === 2, 5000, 50);
    const served = new Set<string | null>();
    for (let i = 0; i < 4; i++) served.add((await short()).instance);
    expect(served).toEqual(new Set(['bkk-1', 'bkk-2']));
  });
});

describe('arus up: the in-process balancers follow control live', () => {
  const sims: SimServer[] = [];
  let up: Running;

  beforeAll(async () => {
    for (let i = 0; i < 2; i++) {
      const sim = createSimServer({ log: silentLogger(), ttftMs: 5 });
      await sim.start();
      sims.push(sim);
    }
    const dir = tempDir('arus-up-live-');
    const regions = regionsWithChecks(dir, () => undefined);
    const file = join(regions, 'bkk.yaml');
    writeFileSync(
      file,
      `${readFileSync(file, 'utf8')}balancer:
  listen: "127.0.0.1:0"
  strategy: round-robin
  slowStartMs: 0
  instances:
${sims.map((sim, i) => `    - { id: bkk-${i + 1}, url: "http://127.0.0.1:${sim.port}", models: [llama-3-8b] }`).join('\n')}
`,
    );
    up = await startArus(['up', '--db', join(dir, 'arus.db'), '--regions', regions, '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off'], { env, timeoutMs: 30_000 });
  }, 60_000);

  afterAll(async () => {
    await up?.stop();
    await Promise.all(sims.map((s) => s.stop()));
  });

  it('a section changed through the API applies to the running balancer: every request a second later goes to the new set', async () => {
    const port = (up.logs.find((l) => l.msg === 'ready')!.balancers as Record<string, number>).bkk;
    const short = async () => {
      const at = Date.now();
      const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'llama-3-8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }) });
      await res.arrayBuffer();
      return { at, instance: res.headers.get('x-arus-instance'), status: res.status };
    };
    await until(short, (r) => r.status === 200, 15_000, 100);
    const headers = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
    const region = (await (await fetch(`${up.api}/v1/regions/bkk`, { headers })).json()) as { balancer: { instances: { id: string }[] } };
    region.balancer.instances = region.balancer.instances.filter((i) => i.id === 'bkk-2');
    const put = await fetch(`${up.api}/v1/regions/bkk`, { method: 'PUT', headers, body: JSON.stringify(region) });
    expect(put.status, await put.clone().text()).toBe(200);
    const acked = Date.now();
    const sent: Sent[] = [];
    while (Date.now() < acked + 1500) sent.push(await short());
    const late = sent.filter((x) => x.at >= acked + 1000);
    expect(late.length).toBeGreaterThan(0);
    expect(late.every((x) => x.instance === 'bkk-2' && x.status === 200), JSON.stringify(late)).toBe(true);
    expect(up.logs.find((l) => l.msg === 'balancer reconfigured')).toMatchObject({ region: 'bkk', removed: ['bkk-1'] });
  });
});
