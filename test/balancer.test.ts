// `arus balancer` as its own process: it reads its region's balancer section
// from control, proxies to the region's model servers, and reports capacity.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../src/sim/server.js';
import { startArus, tempDir, until, type Running } from './helpers/arus.js';
import { createToken } from './helpers/credentials.js';
import { regionsWithBalancer, startSims } from './helpers/regions.js';

const env = { ARUS_ADMIN_TOKEN: 'bal-admin' };

describe('arus balancer, apart from control', () => {
  const sims: SimServer[] = [];
  const procs: Running[] = [];
  let control: Running;
  let balancerPort: number;
  /** A balancer token for each region, bound to it. */
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    sims.push(...(await startSims(2, { ttftMs: 5 })));
    const dir = tempDir();
    const regions = regionsWithBalancer(dir, 'bkk', sims, ['strategy: round-robin', 'reportEveryMs: 200']);
    for (const region of ['bkk', 'sg']) tokens[region] = createToken(join(dir, 'arus.db'), { role: 'balancer', region });
    control = await startArus(['control', '--db', join(dir, 'arus.db'), '--regions', regions, '--api-listen', '127.0.0.1:0'], { env });
    procs.push(control);
    const balancer = await startArus(['balancer', '--region', 'bkk', '--control', control.api!, '--token', tokens.bkk, '--id', 'bkk-lb-1'], { env });
    procs.push(balancer);
    balancerPort = balancer.logs.find((l) => l.msg === 'balancer listening')!.port as number;
  }, 40_000);

  afterAll(async () => {
    for (const p of procs.reverse()) await p.stop();
    await Promise.all(sims.map((s) => s.stop()));
  });

  it('serves requests over its instances and reports its capacity to control', async () => {
    const report = await until(
      async () => ((await (await fetch(`${control.api}/v1/capacity`, { headers: { authorization: `Bearer ${env.ARUS_ADMIN_TOKEN}` } })).json()) as { reports: { balancer: string; region: string; ready: number }[] }).reports,
      (r) => r.some((x) => x.balancer === 'bkk-lb-1' && x.ready === 2),
      15_000,
      200,
    );
    expect(report.find((x) => x.balancer === 'bkk-lb-1')).toMatchObject({ region: 'bkk', ready: 2 });
    const served = new Set<string | null>();
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`http://127.0.0.1:${balancerPort}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama-3-8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
      });
      expect(res.status).toBe(200);
      served.add(res.headers.get('x-arus-instance'));
      await res.arrayBuffer();
    }
    expect(served).toEqual(new Set(['bkk-1', 'bkk-2']));
  });

  it('refuses to start for a region without a balancer section, saying why', async () => {
    await expect(startArus(['balancer', '--region', 'sg', '--control', control.api!, '--token', tokens.sg], { env, timeoutMs: 10_000 })).rejects.toThrow(/region sg has no balancer section/);
  });
});
