// Two kinds of evidence, and coming back needs both. `arus up` with Jakarta's
// balancer in front of two simulated GPUs, and its four probe agents checking
// Jakarta's endpoints against a third sim (the probes' target, failed and
// healed on its own). Jakarta is back only when its balancer has reported
// ready instances for the rise window AND the probe quorum says up: either one
// alone keeps it out.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVIDENCE_DEFAULTS } from '../src/control/balancer-evidence.js';
import type { SimServer } from '../src/sim/server.js';
import { startArus, tempDir, until, type Running } from './helpers/arus.js';
import { digAsync, hasDig } from './helpers/dig.js';
import { regionsWithBalancer, startSims } from './helpers/regions.js';

const requireDig = process.env.CI ? true : hasDig;
const ADMIN = 'both-admin';
const JKT = ['127.0.1.21', '127.0.1.22'];
const SG = ['127.0.1.11', '127.0.1.12'];
/** Longer than either rise: the balancer's window, and the probes' (rise 4 at --probe-interval 200 ms) with a margin. */
const HOLD_MS = EVIDENCE_DEFAULTS.riseMs + 1500;
/** How long the random errors run: about 50 readiness checks of each instance and 40 probe rounds. */
const FLAP_MS = 10_000;
/** What a flap would leave in the history (as bench:failover counts). */
const FLAP_KINDS = ['failover', 'failback', 'endpoint.down', 'endpoint.up', 'zone.down', 'capacity.shedding', 'capacity.recovered'];

type Capacity = { reports: { region: string; ready: number }[] };
type Health = { regions: { id: string; zones: { endpoints: { state: string; reason: string }[] }[] }[] };

describe.skipIf(!requireDig)('fail-back needs both the balancer and the probes', () => {
  let gpus: SimServer[] = [];
  let target: SimServer;
  let server: Running;
  const api = async <T>(path: string) => (await (await fetch(`${server.api}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as T;
  const indonesia = async () => (await digAsync('127.0.0.1', server.dnsPort, ['api.gslb.example.com', 'A', '+subnet=36.66.0.0/24'])).answers.map((a) => a.data).sort();
  const jakartaReady = (n: (ready: number) => boolean) => until(() => api<Capacity>('/v1/capacity'), (c) => c.reports.some((r) => r.region === 'jkt' && n(r.ready)), 5000, 25);
  /** What the probe quorum alone says of Jakarta's endpoints (the tracker's votes, without the balancer's claim on top). */
  const probesSay = async () => {
    const h = await api<Health>('/v1/health');
    return h.regions.find((r) => r.id === 'jkt')!.zones.flatMap((z) => z.endpoints.map((e) => e.reason));
  };
  const gpusFault = (kind: 'crash' | 'none') => Promise.all(gpus.map((s) => s.setFault({ kind })));

  beforeAll(async () => {
    gpus = await startSims(2, { ttftMs: 5, tokensPerSecond: 200 });
    [target] = await startSims(1, {});
    const dir = tempDir();
    // Jakarta's two endpoints checked against the target; every other region without checks.
    const regions = regionsWithBalancer(dir, 'jkt', gpus, ['slowStartMs: 0'], (zone) => (zone.startsWith('jkt-') ? target.port : undefined));
    server = await startArus(['up', '--db', join(dir, 'arus.db'), '--regions', regions, '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off', '--probe-interval', '200'], { env: { ARUS_ADMIN_TOKEN: ADMIN } });
    await jakartaReady((r) => r === 2);
    await until(indonesia, (a) => a.join() === JKT.join(), 10_000, 50);
    // Every agent has reported and voted.
    await until(() => api<{ agents: { fresh: boolean }[] }>('/v1/health'), (h) => h.agents.filter((a) => a.fresh).length === 4, 15_000, 100);
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    await Promise.all([...gpus, target].map((s) => s?.stop()));
  });

  it('takes no one out at 10 % random errors on every instance and the probes\' target: every answer Jakarta, no event', async () => {
    const since = Date.now();
    await Promise.all([...gpus, target].map((s) => s.setFault({ kind: 'error', rate: 0.1 })));
    // Requests through the balancer too (up to 20 a second), so that its outlier detection sees the errors on real traffic.
    const port = server.logs.find((l) => l.msg === 'balancer listening')!.port as number;
    const end = Date.now() + FLAP_MS;
    let [sent, failed] = [0, 0];
    const traffic = (async () => {
      while (Date.now() < end) {
        const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'llama-3-8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }) });
        await res.arrayBuffer();
        sent++;
        if (res.status !== 200) failed++;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const answers: string[] = [];
    while (Date.now() < end) {
      answers.push((await indonesia()).join());
      await new Promise((r) => setTimeout(r, 50));
    }
    await traffic;
    await Promise.all([...gpus, target].map((s) => s.setFault({ kind: 'none' })));
    expect(answers.filter((a) => a !== JKT.join())).toEqual([]);
    // Real traffic saw the errors (a 500 is passed on, not retried: the request may have run).
    expect(sent).toBeGreaterThan(50);
    expect(failed).toBeGreaterThan(0);
    const events = (await api<{ events: { time: number; kind: string; subject: string }[] }>('/v1/events?limit=100')).events.filter((e) => e.time >= since && FLAP_KINDS.includes(e.kind));
    expect(events.map((e) => `${e.kind} ${e.subject}`)).toEqual([]);
  }, 30_000);

  it('keeps Jakarta out while the probes still fail, though its balancer has been ready for longer than the rise window', async () => {
    await Promise.all([gpusFault('crash'), target.setFault({ kind: 'crash' })]);
    await until(indonesia, (a) => a.join() === SG.join(), 5000, 25);
    await gpusFault('none');
    await jakartaReady((r) => r === 2);
    await new Promise((r) => setTimeout(r, HOLD_MS));
    expect(await indonesia()).toEqual(SG);
    expect((await probesSay()).every((reason) => !/balancer/.test(reason))).toBe(true);
    await target.setFault({ kind: 'none' });
    await until(indonesia, (a) => a.join() === JKT.join(), 10_000, 50);
  }, 30_000);

  it('keeps Jakarta out while its balancer has no ready instance, though the probes pass', async () => {
    await gpusFault('crash');
    await until(indonesia, (a) => a.join() === SG.join(), 5000, 25);
    await new Promise((r) => setTimeout(r, HOLD_MS));
    expect(await indonesia()).toEqual(SG);
    // The probes pass: what keeps Jakarta out is the balancer's claim.
    expect((await probesSay()).every((reason) => /balancer balancer-jkt: 0 of 2 instances ready/.test(reason))).toBe(true);
    await gpusFault('none');
    await jakartaReady((r) => r > 0);
    const readyAt = performance.now();
    await until(indonesia, (a) => a.join() === JKT.join(), 8000, 25);
    expect(performance.now() - readyAt).toBeGreaterThanOrEqual(EVIDENCE_DEFAULTS.riseMs - 300);
  }, 30_000);
});
