// Roles apart: `arus control`, `arus dns` and one `arus probe` process. When
// the whole probe fleet goes silent, answers do not change and a "fleet
// blind" event is recorded; `arus events` prints it.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/log.js';
import { createSimServer, type SimServer } from '../src/sim/server.js';
import { arusAsync, startArus, tempDir, until, type Running } from './helpers/arus.js';
import { createToken } from './helpers/credentials.js';
import { digAsync, hasDig } from './helpers/dig.js';
import { REGION_IDS, regionsWithChecks } from './helpers/regions.js';

const requireDig = process.env.CI ? true : hasDig;
const JKT = ['127.0.1.21', '127.0.1.22'];
const env = { ARUS_ADMIN_TOKEN: 'blind-admin' };

describe.skipIf(!requireDig)('a blind probe fleet', () => {
  const sims: SimServer[] = [];
  const procs: Running[] = [];
  let dbFile: string;
  let dns: Running;
  // Without blocking the event loop: the simulated model servers the probe checks live in this process.
  const indonesia = async () => (await digAsync('127.0.0.1', dns.dnsPort, ['api.gslb.example.com', 'A', '+subnet=36.66.0.0/24'])).answers.map((a) => a.data).sort();
  const eventKinds = async () => (JSON.parse((await arusAsync(['events', '--db', dbFile, '--json', '--limit', '1000'])).stdout) as { kind: string }[]).map((e) => e.kind);

  beforeAll(async () => {
    const ports = new Map<string, number>();
    for (const r of REGION_IDS)
      for (const z of [`${r}-a`, `${r}-b`]) {
        const sim = createSimServer({ log: silentLogger() });
        ports.set(z, (await sim.start()).port);
        sims.push(sim);
      }
    const dir = tempDir();
    dbFile = join(dir, 'arus.db');
    const regions = regionsWithChecks(dir, (z) => ports.get(z));
    const probeToken = createToken(dbFile, { role: 'probe', agent: 'probe-sg-1', region: 'sg' });
    const control = await startArus(['control', '--db', dbFile, '--regions', regions, '--api-listen', '127.0.0.1:0'], { env });
    procs.push(control);
    dns = await startArus(['dns', '--db', dbFile, '--dns-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'], { env });
    procs.push(dns);
    procs.push(await startArus(['probe', '--region', 'sg', '--control', control.api!, '--token', probeToken, '--id', 'probe-sg-1'], { env }));
    await until(eventKinds, (k) => k.includes('agent.joined'));
  }, 40_000);

  afterAll(async () => {
    for (const p of procs.reverse()) await p.stop();
    await Promise.all(sims.map((s) => s.stop()));
  });

  it('holds the last state when every agent goes silent, and records it', async () => {
    expect(await indonesia()).toEqual(JKT);
    // Jakarta dies, and the only agent falls silent at once: nobody can see it.
    const probe = procs[2];
    probe.proc.kill('SIGSTOP');
    await sims[2].setFault({ kind: 'crash' });
    await sims[3].setFault({ kind: 'crash' });
    await until(eventKinds, (k) => k.includes('fleet.blind'), 10_000, 200);
    for (let i = 0; i < 5; i++) {
      expect(await indonesia()).toEqual(JKT);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await eventKinds()).not.toContain('failover');
    const table = await arusAsync(['events', '--db', dbFile, '--kind', 'fleet.blind', '--since', '5m']);
    expect(table.stdout).toMatch(/fleet\.blind\s+fleet\s+/);

    // Sight returns: the agent sees Jakarta dead, and DNS (reading control's published health) fails over.
    probe.proc.kill('SIGCONT');
    await until(indonesia, (a) => a.length > 0 && !a.some((x) => JKT.includes(x)), 10_000, 100);
    expect(await eventKinds()).toEqual(expect.arrayContaining(['fleet.sighted', 'failover']));
  });
});
