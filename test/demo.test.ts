// The demo of `npm start`, end to end: the default regions/ run by `arus up`
// with its simulated GPUs and a balancer per region. dig gives a zone's
// loopback address; an OpenAI call to that address on the balancer's port
// reaches a simulated model in that region. When Jakarta's model servers fail,
// its balancer has no model to offer, the probes see it through the balancer,
// and Indonesian clients are sent to Singapore, whose address serves them.
//
// The defaults use fixed ports (8000, 9111–9412) and 127.0.1.x: this test moves
// them to free ports and another 127.x.y.0/24 so that it runs beside `npm start`.
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, ROOT, startArus, tempDir, until, type Running } from './helpers/arus.js';
import { dig, hasDig } from './helpers/dig.js';

const requireDig = process.env.CI ? true : hasDig;
const ADMIN = 'demo-admin';


describe.skipIf(!requireDig)('the npm start demo: DNS answer → balancer → simulated GPU', () => {
  let server: Running;
  /** The demo's 127.0.1 moved to this prefix. */
  const net = `127.${100 + Math.floor(Math.random() * 150)}.${1 + Math.floor(Math.random() * 250)}`;
  let balancerPort: number;
  const simPorts = new Map<string, number>();

  const answer = (subnet: string) =>
    dig('127.0.0.1', server.dnsPort, ['api.gslb.example.com', 'A', `+subnet=${subnet}`])
      .answers.filter((a) => a.type === 'A')
      .map((a) => a.data)
      .sort();
  const chat = async (address: string) => {
    const res = await fetch(`http://${address}:${balancerPort}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama-3-8b', messages: [{ role: 'user', content: 'hello' }], max_tokens: 4 }),
    });
    return { status: res.status, instance: res.headers.get('x-arus-instance'), body: (await res.json()) as { model?: string; choices?: unknown[] } };
  };
  const fault = (region: string, kind: 'error' | 'none') =>
    Promise.all(
      [1, 2].map((i) =>
        fetch(`http://127.0.0.1:${simPorts.get(`${region}-gpu-${i}`)}/admin/fault`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ kind }),
        }).then((r) => expect(r.status).toBe(200)),
      ),
    );

  beforeAll(async () => {
    const dir = tempDir();
    cpSync(join(ROOT, 'regions'), join(dir, 'regions'), { recursive: true });
    balancerPort = await freePort();
    for (const file of readdirSync(join(dir, 'regions')).filter((f) => f !== 'zone.yaml')) {
      const path = join(dir, 'regions', file);
      let text = readFileSync(path, 'utf8').replaceAll('127.0.1.', `${net}.`).replaceAll(':8000', `:${balancerPort}`);
      for (const m of text.matchAll(/id: ([a-z]+-gpu-\d), url: "http:\/\/127\.0\.0\.1:(\d+)"/g)) {
        const port = await freePort();
        simPorts.set(m[1], port);
        text = text.replace(`127.0.0.1:${m[2]}"`, `127.0.0.1:${port}"`);
      }
      writeFileSync(path, text);
    }
    expect(simPorts.size).toBe(8);
    server = await startArus(['up', '--db', join(dir, 'arus.db'), '--regions', join(dir, 'regions'), '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0'], {
      env: { ARUS_ADMIN_TOKEN: ADMIN },
    });
    // Every probe agent has reported on every zone.
    await until(
      async () => ((await (await fetch(`${server.api}/v1/health`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { agents: { fresh: boolean }[] }).agents.filter((a) => a.fresh).length,
      (n) => n === 4,
      15_000,
    );
  }, 40_000);

  afterAll(async () => server?.stop());

  it('runs a balancer per region on the zone addresses, in front of its simulated GPUs', () => {
    const ready = server.logs.find((l) => l.msg === 'ready')!;
    expect(ready.balancers).toEqual({ sg: balancerPort, jkt: balancerPort, bkk: balancerPort, mnl: balancerPort });
  });

  it('opens the status page and its data without a token on loopback (the demo), but no write', async () => {
    const page = await fetch(`${server.api}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<h1[^>]*>/);
    const status = await fetch(`${server.api}/v1/status`);
    expect(status.status).toBe(200);
    expect(((await status.json()) as { regions: { id: string }[] }).regions.map((r) => r.id).sort()).toEqual(['bkk', 'jkt', 'mnl', 'sg']);
    expect((await fetch(`${server.api}/v1/regions/jkt/drain`, { method: 'POST', body: '{"reason":"x"}', headers: { 'content-type': 'application/json' } })).status).toBe(401);
  });

  it.each([
    { who: 'Indonesia', subnet: '36.66.0.0/24', region: 'jkt', n: 2 },
    { who: 'Singapore', subnet: '165.21.0.0/16', region: 'sg', n: 1 },
    { who: 'Thailand', subnet: '171.96.0.0/16', region: 'bkk', n: 3 },
    { who: 'the Philippines', subnet: '112.198.0.0/16', region: 'mnl', n: 4 },
  ])('a client in $who is sent to $region, and each address dig gives serves its model there', async ({ subnet, region, n }) => {
    const addresses = answer(subnet);
    expect(addresses).toEqual([`${net}.${n}1`, `${net}.${n}2`]);
    for (const address of addresses) {
      const r = await chat(address);
      expect(r.status).toBe(200);
      expect(r.body.model).toBe('llama-3-8b');
      expect(r.body.choices).toHaveLength(1);
      expect(r.instance).toMatch(new RegExp(`^${region}-gpu-[12]$`));
    }
  });

  it("sends Indonesia to Singapore's balancer when Jakarta's model servers fail, and back when they heal", async () => {
    await fault('jkt', 'error');
    try {
      // The balancer drops both instances (readiness), then the probes see no model through it.
      await expect.poll(() => answer('36.66.0.0/24'), { timeout: 10_000, interval: 200 }).toEqual([`${net}.11`, `${net}.12`]);
      expect((await chat(`${net}.21`)).status).toBe(503);
      const served = await chat(answer('36.66.0.0/24')[0]);
      expect(served.status).toBe(200);
      expect(served.instance).toMatch(/^sg-gpu-[12]$/);
    } finally {
      await fault('jkt', 'none');
    }
    await expect.poll(() => answer('36.66.0.0/24'), { timeout: 15_000, interval: 200 }).toEqual([`${net}.21`, `${net}.22`]);
    expect((await chat(`${net}.21`)).instance).toMatch(/^jkt-gpu-[12]$/);
  }, 40_000);
});
