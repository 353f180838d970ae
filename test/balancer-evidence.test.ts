// The balancers' live traffic as a health signal, end to end: `arus up` with
// Jakarta's balancer in front of two simulated GPUs and no probe checks
// (the balancer's word alone). Both GPUs crash: the balancer reports at once
// that no instance is ready, control takes Jakarta out, and the failover event
// names the balancer and its instances. They heal: Jakarta is back only after
// the rise window. A report of no ready instance from Bangkok's credential
// moves Bangkok until it goes stale; a report for another region than the
// credential names is refused (403) and changes nothing.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVIDENCE_DEFAULTS } from '../src/control/balancer-evidence.js';
import type { SimServer } from '../src/sim/server.js';
import { startArus, tempDir, until, type Running } from './helpers/arus.js';
import { createToken } from './helpers/credentials.js';
import { digAsync, hasDig } from './helpers/dig.js';
import { regionsWithBalancer, startSims } from './helpers/regions.js';

const requireDig = process.env.CI ? true : hasDig;
const ADMIN = 'evidence-admin';
const JKT = ['127.0.1.21', '127.0.1.22'];
const SG = ['127.0.1.11', '127.0.1.12'];
const BKK = ['127.0.1.31', '127.0.1.32'];

type Event = { kind: string; subject: string; reason: string; at: string };

describe.skipIf(!requireDig)("a balancer's report of no ready instance takes its region out", () => {
  const sims: SimServer[] = [];
  let server: Running;
  let bkkToken: string;
  const api = async (path: string) => (await fetch(`${server.api}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })).json();
  const answer = async (subnet: string) => (await digAsync('127.0.0.1', server.dnsPort, ['api.gslb.example.com', 'A', `+subnet=${subnet}`])).answers.map((a) => a.data).sort();
  const indonesia = () => answer('36.66.0.0/24');
  const thailand = () => answer('171.96.0.0/16');
  const report = (region: string, ready: number) =>
    fetch(`${server.api}/v1/capacity`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bkkToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ region, balancer: 'bkk-lb-1', instances: 2, ready, outstanding: 0, freeConcurrency: ready * 16, queueDepth: 0, unavailable: ready ? [] : [{ id: 'bkk-gpu-1', reason: 'not ready: test' }, { id: 'bkk-gpu-2', reason: 'not ready: test' }] }),
    });

  beforeAll(async () => {
    sims.push(...(await startSims(2, { ttftMs: 5, tokensPerSecond: 200 })));
    const dir = tempDir();
    const regions = regionsWithBalancer(dir, 'jkt', sims, ['slowStartMs: 0']);
    const db = join(dir, 'arus.db');
    bkkToken = createToken(db, { role: 'balancer', region: 'bkk' });
    server = await startArus(['up', '--db', db, '--regions', regions, '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off'], { env: { ARUS_ADMIN_TOKEN: ADMIN } });
    await until(() => api('/v1/capacity') as Promise<{ reports: { region: string; ready: number }[] }>, (c) => c.reports.some((r) => r.region === 'jkt' && r.ready === 2), 15_000, 100);
  }, 40_000);

  afterAll(async () => {
    await server?.stop();
    await Promise.all(sims.map((s) => s.stop()));
  });

  it('moves Indonesia off Jakarta soon after both GPUs crash, the event naming the balancer and its instances; back only after the rise window', async () => {
    expect(await indonesia()).toEqual(JKT);
    const t0 = performance.now();
    await Promise.all(sims.map((s) => s.setFault({ kind: 'crash' })));
    await until(indonesia, (a) => a.join() === SG.join(), 5000, 25);
    const moved = performance.now() - t0;
    console.log(`balancer evidence: Indonesia off Jakarta ${moved.toFixed(0)} ms after its GPUs crashed (readiness every 200 ms, no probes)`);
    const events = ((await api('/v1/events?kind=failover&limit=20')) as { events: Event[] }).events;
    const failover = events.find((e) => e.reason.includes('balancer-jkt'));
    if (!failover) console.log(JSON.stringify(((await api('/v1/events?limit=20')) as { events: Event[] }).events, null, 1));
    expect(failover?.reason).toMatch(/balancer balancer-jkt: 0 of 2 instances ready \(jkt-1: not ready[^;]*; jkt-2: not ready/);

    const healed = performance.now();
    await Promise.all(sims.map((s) => s.setFault({ kind: 'none' })));
    await until(() => api('/v1/capacity') as Promise<{ reports: { region: string; ready: number }[] }>, (c) => c.reports.some((r) => r.region === 'jkt' && r.ready > 0), 5000, 25);
    const readyAt = performance.now();
    // Reported ready: still out for the rise window…
    expect(await indonesia()).toEqual(SG);
    await until(indonesia, (a) => a.join() === JKT.join(), 8000, 25);
    const back = performance.now();
    expect(back - readyAt).toBeGreaterThanOrEqual(EVIDENCE_DEFAULTS.riseMs - 300);
    console.log(`balancer evidence: Jakarta back ${(back - healed).toFixed(0)} ms after its GPUs healed (rise window ${EVIDENCE_DEFAULTS.riseMs} ms)`);
  }, 30_000);

  it("takes a balancer's word only while it is fresh, and only for its own region", async () => {
    expect(await thailand()).toEqual(BKK);
    // Bangkok's credential speaking for Jakarta: refused, nothing moves.
    expect((await report('jkt', 0)).status).toBe(403);
    expect(await indonesia()).toEqual(JKT);
    // For its own region: Bangkok is out at once…
    expect((await report('bkk', 0)).status).toBe(200);
    await until(thailand, (a) => a.length > 0 && a.join() !== BKK.join(), 2000, 25);
    const silent = performance.now();
    // …and back once the report is stale (no further word: the probes, here none, decide alone).
    await until(thailand, (a) => a.join() === BKK.join(), EVIDENCE_DEFAULTS.staleMs + 3000, 50);
    expect(performance.now() - silent).toBeGreaterThanOrEqual(EVIDENCE_DEFAULTS.staleMs - 1000);
  }, 20_000);
});
