// A balancer that restarts causes no failover. `arus control` with Jakarta's
// balancer as its own process (`arus balancer`) in front of two simulated
// GPUs, Jakarta's endpoints watched through the API every 20 ms. The balancer
// is killed (SIGKILL) and started again, then stopped (SIGTERM) and started
// again: while it is away its last word ages out (it goes silent, it does not
// say "nothing ready"), and the new one checks its instances before its first
// report, so it never reports 0 ready. Jakarta never leaves, and the history
// has no event for it.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../src/sim/server.js';
import { startArus, tempDir, until, type Running } from './helpers/arus.js';
import { createToken } from './helpers/credentials.js';
import { regionsWithBalancer, startSims } from './helpers/regions.js';

const ADMIN = 'restart-admin';
type Health = { regions: { id: string; zones: { endpoints: { address: string; state: string; reason: string }[] }[] }[] };
type Event = { kind: string; subject: string; reason: string; time: number };

describe('a balancer that restarts', () => {
  let sims: SimServer[] = [];
  let control: Running;
  let balancer: Running | undefined;
  let token: string;
  const api = async <T>(path: string) => (await (await fetch(`${control.api}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as T;
  const jakarta = async () => (await api<Health>('/v1/health')).regions.find((r) => r.id === 'jkt')!.zones.flatMap((z) => z.endpoints);
  const startBalancer = async () => (balancer = await startArus(['balancer', '--region', 'jkt', '--control', control.api!, '--token', token, '--id', 'jkt-lb-1'], { timeoutMs: 30_000 }));
  /** Reports from the balancer started at or after `since` (ms, control's clock) with every instance ready. */
  const readyAfter = (since: number) =>
    until(() => api<{ reports: { region: string; ready: number; at: number }[] }>('/v1/capacity'), (c) => c.reports.some((r) => r.region === 'jkt' && r.ready === 2 && r.at >= since), 15_000, 25);

  beforeAll(async () => {
    sims = await startSims(2, { ttftMs: 5, tokensPerSecond: 200 });
    const dir = tempDir();
    const regions = regionsWithBalancer(dir, 'jkt', sims, ['slowStartMs: 0']);
    const db = join(dir, 'arus.db');
    token = createToken(db, { role: 'balancer', region: 'jkt' });
    control = await startArus(['control', '--db', db, '--regions', regions, '--api-listen', '127.0.0.1:0'], { env: { ARUS_ADMIN_TOKEN: ADMIN }, timeoutMs: 30_000 });
    await startBalancer();
    await readyAfter(0);
  }, 60_000);

  afterAll(async () => {
    await balancer?.stop();
    await control?.stop();
    await Promise.all(sims.map((s) => s.stop()));
  });

  it('is killed and started again, then stopped and started again: Jakarta never leaves, and no event names it', async () => {
    const t0 = Date.now();
    const seen: string[] = [];
    let watching = true;
    const watch = (async () => {
      while (watching) {
        for (const e of await jakarta()) if (e.state !== 'up') seen.push(`${e.address} ${e.state}: ${e.reason}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
      const exited = new Promise((r) => balancer!.proc.once('exit', r));
      balancer!.proc.kill(signal);
      await exited;
      const restarted = Date.now();
      await startBalancer();
      await readyAfter(restarted);
    }
    // A second more of the new one's reports (each on change, and every second).
    await new Promise((r) => setTimeout(r, 1000));
    watching = false;
    await watch;
    expect(seen).toEqual([]);
    const events = (await api<{ events: Event[] }>('/v1/events?limit=100')).events.filter((e) => e.time >= t0);
    expect(events).toEqual([]);
  }, 60_000);
});
