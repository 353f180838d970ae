// A running balancer given a new balancer section (role.ts reconfigure), in
// front of real simulated model servers on loopback: streams under way end on
// the instance they started on, new requests see the new set at once, an
// added instance serves as soon as it is checked, and only the listen
// addresses wait for a restart.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { balancerSchema, type BalancerDoc } from '../config/schema.js';
import { silentLogger } from '../log.js';
import { createSimServer } from '../sim/server.js';
import { startBalancer } from './role.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function sims(n: number, tokensPerSecond = 2000) {
  const out: { id: string; url: string; models: string[] }[] = [];
  for (let i = 0; i < n; i++) {
    const sim = createSimServer({ log: silentLogger(), ttftMs: 5, tokensPerSecond });
    const { port } = await sim.start();
    cleanup.push(() => sim.stop());
    out.push({ id: `i${i}`, url: `http://127.0.0.1:${port}`, models: ['llama-3-8b'] });
  }
  return out;
}

/** A balancer section as written (weights and kinds may be left out), parsed as control would. */
const doc = (over: Omit<z.input<typeof balancerSchema>, 'listen'> & { listen?: string }): BalancerDoc => balancerSchema.parse({ listen: '127.0.0.1:0', slowStartMs: 0, strategy: 'round-robin', ...over });

async function balancerOver(first: BalancerDoc, log = silentLogger()) {
  const b = await startBalancer({ region: 'jkt', id: 'b', doc: first, log });
  cleanup.push(() => b.stop());
  const url = `http://127.0.0.1:${b.port}`;
  const chat = async (maxTokens = 1, stream = false) => {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama-3-8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens, stream }),
    });
    return { res, instance: res.headers.get('x-arus-instance') };
  };
  return { b, url, chat };
}

const until = async (ok: () => boolean, what: string, ms = 5000) => {
  for (const end = Date.now() + ms; !ok(); await new Promise((r) => setTimeout(r, 10))) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
};

describe('balancer reconfigured live', () => {
  it('lets an open stream finish on a removed instance while new requests go to the new set', async () => {
    const [a, bInst] = await sims(2, 100);
    const { b, chat } = await balancerOver(doc({ instances: [a] }));
    await until(() => b.pool.states().every((s) => s.ready), 'a ready');
    const open = await chat(60, true); // 60 tokens at 100/s: about 0.6 s of stream
    expect(open.instance).toBe('i0');
    const reader = open.res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('data:');

    const changed = b.reconfigure(doc({ instances: [bInst] }));
    expect(changed).toMatchObject({ changed: true, added: ['i1'], removed: ['i0'], updated: [] });
    await until(() => b.pool.states().some((s) => s.instance.id === 'i1' && s.ready), 'i1 checked and ready');
    for (let i = 0; i < 5; i++) {
      const r = await chat();
      await r.res.arrayBuffer();
      expect(r.instance).toBe('i1');
    }
    // The stream started on i0 runs to its end.
    let rest = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    const tokens = (first + rest).split('\n').filter((l) => l.startsWith('data: {') && l.includes('"content"')).length;
    expect(tokens).toBe(60);
    expect(rest).toContain('data: [DONE]');
    expect(b.pool.states().map((s) => s.instance.id)).toEqual(['i1']);
  });

  it('re-weights and changes the strategy and limits without losing the instances’ readiness', async () => {
    const fleet = await sims(2);
    const { b, chat } = await balancerOver(doc({ instances: fleet.map((i) => ({ ...i, weight: 100 })) }));
    await until(() => b.pool.states().every((s) => s.ready), 'both ready');
    const next = doc({ strategy: 'weighted', maxQueue: 3, maxConcurrentPerInstance: 2, instances: [{ ...fleet[0], weight: 100 }, { ...fleet[1], weight: 0 }] });
    expect(b.reconfigure(next)).toMatchObject({ changed: true, added: [], removed: [], updated: ['i1'], settings: expect.arrayContaining(['strategy', 'maxQueue', 'maxConcurrentPerInstance']) });
    expect(b.pool.states().every((s) => s.ready)).toBe(true);
    const served = new Set<string | null>();
    for (let i = 0; i < 10; i++) {
      const r = await chat();
      await r.res.arrayBuffer();
      served.add(r.instance);
    }
    expect(served).toEqual(new Set(['i0']));
    // Two ready instances under the new cap of 2 (weight 0 takes no new picks but stays ready).
    expect(b.pool.capacity().freeConcurrency).toBe(4);
    expect(b.doc).toBe(next);
    // The same document again changes nothing.
    expect(b.reconfigure(next)).toMatchObject({ changed: false });
  });

  it('applies outlier settings live: a share of 100 % lets a failing instance out that 50 % kept in', async () => {
    const fleet = await sims(3);
    const { b } = await balancerOver(doc({ instances: fleet }));
    await until(() => b.pool.states().every((s) => s.ready), 'all ready');
    const fail = (id: string) => {
      const s = b.pool.states().find((x) => x.instance.id === id)!;
      b.pool.acquire(s);
      b.pool.release(s, { ok: false, status: 500, durationMs: 1 });
    };
    for (const id of ['i0', 'i1']) for (let k = 0; k < 5; k++) fail(id);
    expect(b.pool.capacity().ejected).toBe(1); // 50 % of 3: one
    expect(b.reconfigure(doc({ instances: fleet, outlier: { maxEjectionPercent: 100 } }))).toMatchObject({ changed: true, settings: ['outlier'] });
    fail('i1');
    expect(b.pool.capacity().ejected).toBe(2);
    for (let k = 0; k < 5; k++) fail('i2');
    expect(b.pool.capacity().ejected).toBe(2); // never the last one serving
  });

  it('cannot move its listener live: says so, keeps listening where it is, and applies the rest', async () => {
    const [a, bInst] = await sims(2);
    const lines: { level: number; msg: string; listen?: string[] }[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const { b, chat } = await balancerOver(doc({ instances: [a] }), log);
    const changed = b.reconfigure(doc({ listen: '127.0.0.1:1', instances: [a, bInst] }));
    expect(changed.restartNeeded).toEqual(['127.0.0.1:1']);
    expect(lines.find((l) => l.level === 40)).toMatchObject({ listen: ['127.0.0.1:1'], msg: expect.stringMatching(/only a restart/) });
    await until(() => b.pool.states().length === 2 && b.pool.states().every((s) => s.ready), 'the added instance ready');
    const r = await chat();
    expect(r.res.status).toBe(200);
  });
});
