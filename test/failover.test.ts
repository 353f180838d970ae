// Failover end to end: real model servers (sims) on loopback, real probe
// agents and control inside `arus up`, answers read with dig, history read
// from the SQLite file.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/database.js';
import type { StoredEvent } from '../src/db/history.js';
import { createStore } from '../src/db/store.js';
import type { SimServer } from '../src/sim/server.js';
import { startArus, tempDir, until, type Running } from './helpers/arus.js';
import { createToken } from './helpers/credentials.js';
import { dig, hasDig } from './helpers/dig.js';
import { regionsWithChecks, startZoneSims } from './helpers/regions.js';
import { configRules } from '../src/config/rules.js';

const requireDig = process.env.CI ? true : hasDig;
const JKT = ['127.0.1.21', '127.0.1.22'];
const SG = ['127.0.1.11', '127.0.1.12'];
const ADMIN = 'test-admin-token';

describe.skipIf(!requireDig)('failover with live probes', () => {
  const sims = new Map<string, SimServer>();
  let server: Running;
  let dbFile: string;
  /** The probe token of an agent outside `arus up` (its own agents have theirs), bound to it. */
  let partitioned: string;
  const indonesia = () =>
    dig('127.0.0.1', server.dnsPort, ['api.gslb.example.com', 'A', '+subnet=36.66.0.0/24'])
      .answers.filter((a) => a.type === 'A')
      .map((a) => a.data)
      .sort();
  const events = (kind: string): StoredEvent[] => {
    const db = openDatabase(dbFile);
    try {
      return createStore(db, { rules: configRules }).listEvents({ kind, limit: 1000 }).reverse();
    } finally {
      db.$client.close();
    }
  };
  const crash = (...zones: string[]) => Promise.all(zones.map((z) => sims.get(z)!.setFault({ kind: 'crash' })));
  const restore = (...zones: string[]) => Promise.all(zones.map((z) => sims.get(z)!.setFault({ kind: 'none' })));

  beforeAll(async () => {
    for (const [zone, sim] of await startZoneSims()) sims.set(zone, sim);
    const dir = tempDir();
    dbFile = join(dir, 'arus.db');
    const regions = regionsWithChecks(dir, (zone) => sims.get(zone)!.port);
    partitioned = createToken(dbFile, { role: 'probe', agent: 'probe-partitioned', region: 'mnl' });
    server = await startArus(
      ['up', '--db', dbFile, '--regions', regions, '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off'],
      { env: { ARUS_ADMIN_TOKEN: ADMIN } },
    );
    // Every agent has reported and voted.
    await until(
      async () => ((await (await fetch(`${server.api}/v1/health`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { agents: { fresh: boolean }[] }).agents.filter((a) => a.fresh).length,
      (n) => n === 4,
    );
  }, 30_000);

  afterAll(async () => {
    await server?.stop();
    await Promise.all([...sims.values()].map((s) => s.stop()));
  });

  it('moves Indonesian clients to sg when both Jakarta model servers die, records it with the countries, and fails back', async () => {
    expect(indonesia()).toEqual(JKT);
    const t0 = Date.now();
    await crash('jkt-a', 'jkt-b');
    await expect.poll(indonesia, { timeout: 5000, interval: 100 }).toEqual(SG);
    const failoverMs = Date.now() - t0;
    expect(failoverMs).toBeLessThan(5000);

    const [failover] = events('failover');
    expect(failover).toMatchObject({ oldState: 'jkt', newState: 'sg', region: 'jkt' });
    expect((failover.data as { countries: string[] }).countries).toContain('ID');
    expect(events('region.down').map((e) => e.subject)).toContain('region:jkt');
    const down = events('endpoint.down').filter((e) => e.subject.startsWith('jkt/'));
    expect(down.map((e) => e.subject).sort()).toEqual(['jkt/jkt-a/127.0.1.21', 'jkt/jkt-b/127.0.1.22']);
    expect(down[0].reason).toMatch(/of 4 agents: connect ECONNREFUSED 127\.0\.0\.1:\d+/);

    await restore('jkt-a', 'jkt-b');
    await expect.poll(indonesia, { timeout: 8000, interval: 100 }).toEqual(JKT);
    const [failback] = events('failback');
    expect(failback).toMatchObject({ oldState: 'sg', newState: 'jkt' });
    expect((failback.data as { countries: string[] }).countries).toContain('ID');
  });

  it('takes only a dead zone out of the answer, without a failover', async () => {
    const failovers = events('failover').length;
    await crash('jkt-a');
    await expect.poll(indonesia, { timeout: 5000, interval: 100 }).toEqual(['127.0.1.22']);
    expect(events('region.degraded').map((e) => e.subject)).toContain('region:jkt');
    expect(events('zone.down').map((e) => e.subject)).toContain('zone:jkt/jkt-a');
    expect(events('failover')).toHaveLength(failovers);
    await restore('jkt-a');
    await expect.poll(indonesia, { timeout: 8000, interval: 100 }).toEqual(JKT);
    expect(events('zone.up').map((e) => e.subject)).toContain('zone:jkt/jkt-a');
  });

  it('ignores one partitioned agent that sees Jakarta failing while four see it healthy', async () => {
    const downs = events('endpoint.down').length;
    const targets = ((await (await fetch(`${server.api}/v1/probes/targets`, { headers: { authorization: `Bearer ${partitioned}` } })).json()) as { targets: { endpoint: string }[] }).targets;
    const jkt = targets.filter((t) => t.endpoint.startsWith('jkt/')).map((t) => t.endpoint);
    for (let i = 0; i < 12; i++) {
      const res = await fetch(`${server.api}/v1/probes/report`, {
        method: 'POST',
        headers: { authorization: `Bearer ${partitioned}`, 'content-type': 'application/json' },
        body: JSON.stringify({ agent: { id: 'probe-partitioned', region: 'mnl' }, results: jkt.map((endpoint) => ({ endpoint, ok: false, error: 'connect ETIMEDOUT', at: Date.now() })) }),
      });
      expect(res.status).toBe(200);
      expect(indonesia()).toEqual(JKT);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(events('endpoint.down').length).toBe(downs);
    expect(events('agent.joined').map((e) => e.subject)).toContain('probe-partitioned');
  });

  it('does not flap with 10 % of checks failing at random for 30 s (bench:failover runs 10 minutes)', async () => {
    const before = { failover: events('failover').length, failback: events('failback').length, down: events('endpoint.down').length };
    await Promise.all([...sims.values()].map((s) => s.setFault({ kind: 'error', rate: 0.1 })));
    const end = Date.now() + 30_000;
    const answers: string[][] = [];
    // 30 s and at least 51 answers, however slowly a busy machine runs dig.
    while (Date.now() < end || answers.length <= 50) {
      answers.push(indonesia());
      await new Promise((r) => setTimeout(r, 250));
    }
    await Promise.all([...sims.values()].map((s) => s.setFault({ kind: 'none' })));
    // Every answer came from Jakarta: no failover, not even for one query.
    expect(answers.filter((a) => a.length === 0 || a.some((x) => !JKT.includes(x)))).toEqual([]);
    expect(events('failover').length).toBe(before.failover);
    expect(events('failback').length).toBe(before.failback);
    // An endpoint going down on chance alone needs 3 of 4 agents to see two failures in a row: ~1e-5 a round (src/health/README.md).
    expect(events('endpoint.down').length - before.down).toBeLessThanOrEqual(1);
  }, 60_000);
});
