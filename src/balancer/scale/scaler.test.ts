// The scaler on real sockets: a whole balancer (startBalancer) in front of a
// real simulated model server, the local provider starting real `arus sim`
// processes, and a real HTTP receiver for the webhook.
import { createServer, type IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { balancerSchema } from '../../config/schema.js';
import { silentLogger } from '../../log.js';
import { createSimServer } from '../../sim/server.js';
import type { CapacityReport } from '../../control/capacity.js';
import { until } from '../../../test/helpers/arus.js';
import { startBalancer } from '../role.js';
import type { InstanceState } from '../types.js';
import type { ScaleProvider } from './provider.js';
import type { ScaleEvent } from './report.js';
import { createScaler } from './scaler.js';

const MODEL = 'llama-3-8b';
const log = silentLogger();
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** One configured sim behind a balancer with `autoscale`; the capacity reports it sends, kept. */
async function region(autoscale: Record<string, unknown>, sim: { maxRunning: number; tokensPerSecond: number }) {
  const base = createSimServer({ log, model: MODEL, ttftMs: 5, ...sim });
  const { port } = await base.start();
  cleanup.push(() => base.stop());
  const reports: Omit<CapacityReport, 'at'>[] = [];
  const doc = balancerSchema.parse({
    strategy: 'least-outstanding',
    instances: [{ id: 'base', url: `http://127.0.0.1:${port}`, models: [MODEL] }],
    maxConcurrentPerInstance: sim.maxRunning,
    maxQueue: 1000,
    queueTimeoutMs: 60_000,
    slowStartMs: 300,
    reportEveryMs: 200,
    autoscale: { [MODEL]: autoscale },
  });
  const balancer = await startBalancer({ region: 'jkt', id: 'b1', doc, log, listen: { address: '127.0.0.1', port: 0 }, report: (r) => void reports.push(r) });
  cleanup.push(() => balancer.stop());
  const events = () => reports.flatMap((r) => r.events ?? []);
  return { url: `http://127.0.0.1:${balancer.port}`, balancer, reports, events };
}

type Answer = { instance: string | null; status: number; body: string };

async function chat(url: string, maxTokens: number, stream = false): Promise<Answer> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens, stream }),
  });
  return { instance: res.headers.get('x-arus-instance'), status: res.status, body: await res.text() };
}

const eventOf = (events: ScaleEvent[], kind: string, subject?: RegExp) => events.find((e) => e.kind === kind && (!subject || subject.test(e.subject)));

describe('local scaler on real sims', () => {
  it('a queue past the target starts an instance that takes traffic only once ready; on the way down it drains, its open stream completes and no new request reaches it', async () => {
    const WARMUP = 1500;
    const r = await region(
      {
        min: 1,
        max: 2,
        targetUtilization: 1,
        targetQueueMs: 200,
        windowMs: 1500,
        panicWindowMs: 500,
        scaleDownCooldownMs: 1500,
        drainTimeoutMs: 20_000,
        intervalMs: 100,
        provider: { kind: 'local', sim: { warmupMs: WARMUP, ttftMs: 5, tokensPerSecond: 40, maxRunning: 4 } },
      },
      { maxRunning: 4, tokensPerSecond: 40 },
    );
    // Six clients on four slots: demand of 1.5 instances at full use, the queue growing.
    const answers: Answer[] = [];
    let loading = true;
    const client = async () => {
      while (loading) answers.push(await chat(r.url, 10));
    };
    const clients = Array.from({ length: 6 }, client);
    const warming = await until(r.events, (e) => eventOf(e, 'scale.instance.warming') !== undefined, 15_000).then((e) => eventOf(e, 'scale.instance.warming')!);
    expect(eventOf(r.events(), 'scale.up')?.reason).toMatch(/requests .* \(in flight \+ queued\), 4 slots each at 100 %.*: 2 instances/);
    const auto = warming.subject.replace('instance:jkt/', '');
    expect(auto).toMatch(/-auto-1$/);
    await until(r.events, (e) => eventOf(e, 'scale.instance.ready', new RegExp(auto)) !== undefined, 15_000);
    await until(() => answers.filter((a) => a.instance === auto).length, (n) => n >= 3, 10_000);
    loading = false;
    await Promise.all(clients);
    expect(answers.every((a) => a.status === 200)).toBe(true);
    // Nothing reached it while its model loaded: the sim answers 503 then, which would count as a failure and a retry.
    const st = r.balancer.proxy.stats();
    expect(st.instances[auto].requests).toBeGreaterThanOrEqual(3);
    expect(st.instances[auto].failures).toBe(0);
    expect(st.retries).toBe(0);
    // It joined at once, and became ready only after its model's load.
    expect(r.balancer.pool.states().find((s) => s.instance.id === auto)!.readySince).toBeGreaterThanOrEqual(warming.at + WARMUP - 100);

    // Two long streams, one on each instance (least outstanding): half an instance's worth of demand.
    const streams = [chat(r.url, 160, true), chat(r.url, 160, true)];
    const draining = await until(r.events, (e) => eventOf(e, 'scale.instance.draining', new RegExp(auto)) !== undefined, 15_000).then((e) => eventOf(e, 'scale.instance.draining', new RegExp(auto))!);
    expect(draining.reason).toMatch(/1 in flight/);
    // One at a time: three at once would be demand enough to bring it back into service (as it should).
    const during: Answer[] = [];
    for (let i = 0; i < 3; i++) during.push(await chat(r.url, 2));
    expect(during.map((a) => a.instance)).toEqual(['base', 'base', 'base']);
    const done = await Promise.all(streams);
    expect(done.map((a) => a.instance).sort()).toEqual([auto, 'base'].sort());
    for (const s of done) expect(s.body).toMatch(/data: \[DONE\]\n\n$/);
    const removed = await until(r.events, (e) => eventOf(e, 'scale.instance.removed', new RegExp(auto)) !== undefined, 10_000).then((e) => eventOf(e, 'scale.instance.removed', new RegExp(auto))!);
    expect(removed.reason).toMatch(/drained in .* its process stopped/);
    expect(r.balancer.pool.states().map((s) => s.instance.id)).toEqual(['base']);
    expect(r.balancer.scaler.extra()).toEqual([]);
    // The figures the reports carry followed it all.
    const pools = r.reports.flatMap((x) => x.pools ?? []);
    expect(pools.some((p) => p.warming === 1 && p.current === 2)).toBe(true);
    expect(pools.some((p) => p.draining === 1)).toBe(true);
    expect(pools.at(-1)).toMatchObject({ model: MODEL, current: 1, warming: 0, draining: 0, scaling: 'local' });
  }, 60_000);
});

describe('webhook scaler', () => {
  /** A receiver that answers each call with the next status of `statuses` (the last one repeats). */
  async function receiver(statuses: number[]) {
    const calls: { auth?: string; body: Record<string, unknown> }[] = [];
    const server = createServer((req: IncomingMessage, res) => {
      let data = '';
      req.on('data', (c: Buffer) => (data += c.toString()));
      req.on('end', () => {
        calls.push({ auth: req.headers.authorization, body: JSON.parse(data) as Record<string, unknown> });
        res.writeHead(statuses[Math.min(calls.length - 1, statuses.length - 1)]).end();
      });
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    cleanup.push(() => new Promise((ok) => server.close(() => ok())));
    return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/scale`, calls };
  }

  const webhook = (url: string, retries: number) => ({ min: 2, max: 4, intervalMs: 100, windowMs: 1000, panicWindowMs: 500, provider: { kind: 'webhook', url, retries } });

  it('POSTs the desired count with the bearer token, retrying a failing receiver with back-off until it takes it', async () => {
    process.env.ARUS_SCALE_WEBHOOK_TOKEN = 'scale-secret';
    const rx = await receiver([500, 503, 200]);
    // min 2 with one instance configured: 2 wanted, 1 there.
    const r = await region(webhook(rx.url, 4), { maxRunning: 4, tokensPerSecond: 1000 });
    const delivered = await until(r.events, (e) => eventOf(e, 'scale.webhook.delivered') !== undefined, 10_000).then((e) => eventOf(e, 'scale.webhook.delivered')!);
    expect(rx.calls).toHaveLength(3);
    for (const c of rx.calls) {
      expect(c.auth).toBe('Bearer scale-secret');
      expect(c.body).toMatchObject({ region: 'jkt', model: MODEL, desired: 2, current: 1, drained: [] });
    }
    expect(delivered.newState).toBe('2 desired');
    expect(eventOf(r.events(), 'scale.webhook.failed')).toBeUndefined();
    // One step asked for, not one per look while the receiver has yet to add the instance.
    expect(r.events().filter((e) => e.kind === 'scale.up')).toHaveLength(1);
    // Delivered once: the same figures are not sent again.
    await new Promise((ok) => setTimeout(ok, 500));
    expect(rx.calls).toHaveLength(3);
  }, 20_000);

  it('survives a receiver that keeps failing: retries, then a scale.webhook.failed event, and the balancer serves on', async () => {
    process.env.ARUS_SCALE_WEBHOOK_TOKEN = 'scale-secret';
    const rx = await receiver([500]);
    const r = await region(webhook(rx.url, 2), { maxRunning: 4, tokensPerSecond: 1000 });
    const failed = await until(r.events, (e) => eventOf(e, 'scale.webhook.failed') !== undefined, 10_000).then((e) => eventOf(e, 'scale.webhook.failed')!);
    expect(failed.reason).toMatch(/POST http:\/\/127\.0\.0\.1:\d+\/scale failed 3 times \(last: answered 500\)/);
    expect(rx.calls.length).toBeGreaterThanOrEqual(3);
    expect((await chat(r.url, 2)).status).toBe(200);
    // And it is tried again later.
    await until(() => rx.calls.length, (n) => n >= 4, 10_000);
  }, 30_000);

  it('refuses to start without its token, naming the variable', async () => {
    delete process.env.ARUS_SCALE_WEBHOOK_TOKEN;
    await expect(region(webhook('http://127.0.0.1:9/scale', 0), { maxRunning: 4, tokensPerSecond: 1000 })).rejects.toThrow(/set ARUS_SCALE_WEBHOOK_TOKEN/);
  });
});

describe('cool-down under a square wave', () => {
  /** The scaler over a pool of plain states, a provider that starts instances at once, and a clock moved by hand. */
  function squareWave(scaleDownCooldownMs: number) {
    let t = 0;
    let started = 0;
    const states: InstanceState[] = [{ instance: { id: 'base', url: 'http://127.0.0.1:1', weight: 100, models: [MODEL], kinds: ['chat'] }, ready: true, ejections: 0, consecutiveFailures: 0, outstanding: 0 }];
    const provider: ScaleProvider = {
      kind: 'local',
      launch: (model) => Promise.resolve({ id: `auto-${++started}`, url: `http://127.0.0.1:${1000 + started}`, weight: 100, models: [model], kinds: ['chat'] }),
      stop: () => Promise.resolve(),
      close: () => Promise.resolve(),
    };
    const doc = balancerSchema.parse({
      instances: [{ id: 'base', url: 'http://127.0.0.1:1', models: [MODEL] }],
      maxConcurrentPerInstance: 4,
      autoscale: { [MODEL]: { min: 1, max: 4, targetUtilization: 1, windowMs: 2000, panicWindowMs: 500, scaleDownCooldownMs, provider: { kind: 'local' } } },
    });
    const scaler = createScaler({
      region: 'jkt',
      doc,
      pool: { states: () => states, setDraining: (id, on) => Boolean(states.find((s) => s.instance.id === id && (s.draining = on || undefined) !== null)) },
      queued: () => 0,
      apply: () => {
        const ids = new Set(scaler.extra().map((i) => i.id));
        for (const i of scaler.extra()) if (!states.some((s) => s.instance.id === i.id)) states.push({ instance: i, ready: true, ejections: 0, consecutiveFailures: 0, outstanding: 0 });
        for (let k = states.length - 1; k > 0; k--) if (!ids.has(states[k].instance.id)) states.splice(k, 1);
      },
      log,
      now: () => t,
      providers: { local: () => provider },
    });
    cleanup.push(() => scaler.stop());
    return {
      scaler,
      /** 40 s of a wave: 3 s with 12 requests in flight (three instances' worth), 3 s with none. */
      async run() {
        for (; t < 40_000; t += 100) {
          const high = Math.floor(t / 3000) % 2 === 0;
          const live = states.filter((s) => !s.draining);
          for (const s of states) s.outstanding = 0;
          if (high) for (let k = 0; k < 12; k++) live[k % live.length].outstanding++;
          scaler.tick();
          await Promise.resolve();
          await Promise.resolve();
        }
        return scaler.events().filter((e) => e.kind === 'scale.up' || e.kind === 'scale.down');
      },
    };
  }

  it('with a cool-down the fleet grows once and stays; without one it follows every half-wave', async () => {
    const steady = await squareWave(10_000).run();
    expect(steady.map((e) => e.kind)).toEqual(['scale.up']);
    expect(steady[0].newState).toBe('3 instances');
    const flapping = await squareWave(0).run();
    expect(flapping.filter((e) => e.kind === 'scale.down').length).toBeGreaterThanOrEqual(4);
  });
});
