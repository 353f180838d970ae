// Capacity-aware steering end to end: Jakarta's balancer in front of two
// simulated GPUs inside `arus up`; saturating them moves a share of Indonesian
// DNS answers to sg, with an event, and relieving them brings them back.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../src/sim/server.js';
import { startArus, tempDir, until, type Running } from './helpers/arus.js';
import { digAsync, hasDig } from './helpers/dig.js';
import { regionsWithBalancer, startSims } from './helpers/regions.js';

const requireDig = process.env.CI ? true : hasDig;
const ADMIN = 'capacity-admin';
const JKT = new Set(['127.0.1.21', '127.0.1.22']);
const SG = new Set(['127.0.1.11', '127.0.1.12']);

describe.skipIf(!requireDig)('capacity-aware steering', () => {
  const sims: SimServer[] = [];
  let server: Running;
  let balancerPort: number;
  const api = async (path: string) => (await fetch(`${server.api}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })).json();
  /** Where each of 40 Indonesian /24s is sent (8 digs at a time, the event loop free). */
  const placements = async () => {
    const out: ('jkt' | 'sg' | 'other')[] = [];
    for (let i = 0; i < 40; i += 8) {
      const batch = await Promise.all(
        Array.from({ length: 8 }, (_, j) => digAsync('127.0.0.1', server.dnsPort, ['api.gslb.example.com', 'A', `+subnet=36.66.${i + j}.0/24`])),
      );
      for (const r of batch) {
        const a = r.answers.map((x) => x.data);
        out.push(a.length && a.every((x) => JKT.has(x)) ? 'jkt' : a.length && a.every((x) => SG.has(x)) ? 'sg' : 'other');
      }
    }
    return out;
  };
  const countsOf = (p: readonly string[]) => ({ jkt: p.filter((x) => x === 'jkt').length, sg: p.filter((x) => x === 'sg').length });
  /** Counts of jkt and sg answers among the 40. */
  const spread = async () => countsOf(await placements());

  beforeAll(async () => {
    sims.push(...(await startSims(2, { maxRunning: 2, ttftMs: 50, tokensPerSecond: 5 })));
    const dir = tempDir();
    const regions = regionsWithBalancer(dir, 'jkt', sims, ['strategy: least-outstanding', 'maxConcurrentPerInstance: 2', 'maxQueue: 50', 'queueTimeoutMs: 60000', 'reportEveryMs: 200']);
    server = await startArus(['up', '--db', join(dir, 'arus.db'), '--regions', regions, '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off'], {
      env: { ARUS_ADMIN_TOKEN: ADMIN },
    });
    balancerPort = (server.logs.find((l) => l.msg === 'ready')!.balancers as Record<string, number>).jkt;
    // The balancer has found both instances ready and reported it.
    await until(() => api('/v1/capacity') as Promise<{ reports: { region: string; ready: number }[] }>, (c) => c.reports.some((r) => r.region === 'jkt' && r.ready === 2), 15_000, 200);
  }, 40_000);

  afterAll(async () => {
    await server?.stop();
    await Promise.all(sims.map((s) => s.stop()));
  });

  it('sheds a share of Indonesian clients to sg while Jakarta is saturated, records it, and takes them back', async () => {
    expect(await spread()).toEqual({ jkt: 40, sg: 0 });

    // Eight long generations: four running (two per GPU), four queued at the balancer.
    const load = new AbortController();
    const requests = Array.from({ length: 8 }, () =>
      fetch(`http://127.0.0.1:${balancerPort}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama-3-8b', messages: [{ role: 'user', content: 'write a long story' }], max_tokens: 500 }),
        signal: load.signal,
      }).catch(() => undefined),
    );
    const shedding = (await until(
      () => api('/v1/events?kind=capacity.shedding') as Promise<{ events: { subject: string; reason: string }[] }>,
      (e) => e.events.length > 0,
      10_000,
      200,
    )).events[0];
    expect(shedding.subject).toBe('region:jkt');
    expect(shedding.reason).toMatch(/shedding \d+% of new clients/);

    const first = await placements();
    const during = countsOf(first);
    expect(during.sg).toBeGreaterThan(5); // a share moved…
    expect(during.jkt).toBeGreaterThan(5); // …not everyone
    expect(during.jkt + during.sg).toBe(40);
    // A client's /24 lands by a stable hash: asked again, the same ones move, or (the share having stepped
    // up or down by 10 % meanwhile) the moved ones of the smaller share are among those of the larger one.
    const second = await placements();
    const moved = (p: readonly string[]) => p.flatMap((x, i) => (x === 'sg' ? [i] : []));
    const [a, b] = [moved(first), moved(second)];
    expect(a.every((i) => b.includes(i)) || b.every((i) => a.includes(i))).toBe(true);

    // Relief: the clients go away, the generations are cancelled, Jakarta takes its clients back.
    load.abort();
    await Promise.all(requests);
    await until(() => api('/v1/events?kind=capacity.recovered') as Promise<{ events: unknown[] }>, (e) => e.events.length > 0, 10_000, 200);
    await until(spread, (s) => s.jkt === 40, 15_000, 200);
  }, 60_000);
});
