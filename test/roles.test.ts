// Roles apart: `arus control` and two `arus dns --control` nodes, each its own
// process. Nodes follow control's snapshot stream, keep answering from their
// last snapshot while control is dead (kill -9), answer from their disk
// snapshot at once after their own kill -9, and control records the gap when
// it is back.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startArus, tempDir, until, type Running } from './helpers/arus.js';
import { createToken } from './helpers/credentials.js';
import { dig, hasDig } from './helpers/dig.js';
import { regionsWithChecks } from './helpers/regions.js';

const requireDig = process.env.CI ? true : hasDig;
const ADMIN = 'roles-admin-token';
const env = { ARUS_ADMIN_TOKEN: ADMIN };
/** What the test moves Jakarta's endpoints to. */
const MOVED = ['198.51.100.21', '198.51.100.22'];

describe.skipIf(!requireDig)('control and DNS nodes as separate processes', () => {
  let dir: string;
  let dbFile: string;
  let regions: string;
  /** Each node's own dns token, bound to its name: a gets it as --token and --id, b from ARUS_DNS_TOKEN and is named by it. */
  const tokens: Record<'a' | 'b', string> = { a: '', b: '' };
  let control: Running;
  let controlPort: number;
  /** When control was killed: no node can have been without it for longer than since then. */
  let controlKilledAt = 0;
  const nodes: Record<'a' | 'b', Running | undefined> = { a: undefined, b: undefined };

  const indonesia = (node: Running) =>
    dig('127.0.0.1', node.dnsPort, ['api.gslb.example.com', 'A', '+subnet=36.66.0.0/24'])
      .answers.filter((a) => a.type === 'A')
      .map((a) => a.data)
      .sort();
  const api = (path: string, init: { method?: string; body?: unknown } = {}) =>
    fetch(`http://127.0.0.1:${controlPort}${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
  const startControl = (port = 0) => startArus(['control', '--db', dbFile, '--regions', regions, '--api-listen', `127.0.0.1:${port}`], { env, timeoutMs: 30_000 });
  const startNode = (name: 'a' | 'b') =>
    startArus(
      ['dns', '--control', `http://127.0.0.1:${controlPort}`, ...(name === 'a' ? ['--token', tokens.a, '--id', 'dns-a'] : []), '--snapshot', join(dir, `${name}`, 'snapshot.json'), '--dns-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'],
      { timeoutMs: 30_000, env: name === 'b' ? { ARUS_DNS_TOKEN: tokens.b } : {} },
    );
  const metricsOf = async (node: Running) => {
    const url = node.logs.find((l) => l.msg === 'ready')!.metrics as string;
    return (await fetch(url)).text();
  };
  const kill9 = async (r: Running) => {
    const exited = new Promise((resolve) => r.proc.once('exit', resolve));
    r.proc.kill('SIGKILL');
    await exited;
  };

  beforeAll(async () => {
    dir = tempDir('arus-roles-');
    dbFile = join(dir, 'arus.db');
    // No health checks: without probes every endpoint stays up, and only configuration moves answers.
    regions = regionsWithChecks(dir, () => undefined);
    for (const n of ['a', 'b'] as const) tokens[n] = createToken(dbFile, { role: 'dns', node: `dns-${n}` });
    control = await startControl();
    controlPort = Number(new URL(control.api!).port);
    [nodes.a, nodes.b] = await Promise.all([startNode('a'), startNode('b')]);
  }, 60_000);

  afterAll(async () => {
    for (const n of Object.values(nodes)) await n?.stop();
    await control?.stop();
  });

  it("answers from control's snapshot on both nodes, and a configuration change reaches both within a second", async () => {
    const before = indonesia(nodes.a!);
    expect(before.length).toBeGreaterThan(0);
    expect(indonesia(nodes.b!)).toEqual(before);
    for (const n of Object.values(nodes)) expect(n!.logs.find((l) => l.msg === 'ready')).toMatchObject({ from: 'control' });

    const jkt = (await (await api('/v1/regions/jkt')).json()) as { zones: { endpoints: { address: string }[] }[] };
    jkt.zones.forEach((z, i) => (z.endpoints = [{ ...z.endpoints[0], address: MOVED[i] }]));
    const put = await api('/v1/regions/jkt', { method: 'PUT', body: jkt });
    expect(put.status, await put.clone().text()).toBe(200);
    const t0 = Date.now();
    await until(() => [indonesia(nodes.a!), indonesia(nodes.b!)], ([a, b]) => a.join() === MOVED.join() && b.join() === MOVED.join(), 5000, 20);
    const ms = Date.now() - t0;
    console.log(`configuration change reached both DNS nodes in ${ms} ms`);
    expect(ms).toBeLessThan(2000);
  });

  it('keeps answering from the last snapshot after kill -9 of control', async () => {
    controlKilledAt = Date.now();
    await kill9(control);
    for (let i = 0; i < 5; i++) {
      expect(indonesia(nodes.a!)).toEqual(MOVED);
      expect(indonesia(nodes.b!)).toEqual(MOVED);
      await new Promise((r) => setTimeout(r, 200));
    }
    await until(() => metricsOf(nodes.a!), (m) => /^arus_control_connected 0$/m.test(m));
  });

  it('answers from its disk snapshot within a second of starting, after its own kill -9, with control still down', async () => {
    await kill9(nodes.a!);
    const spawned = Date.now();
    nodes.a = await startNode('a');
    await until(() => indonesia(nodes.a!), (a) => a.join() === MOVED.join(), 5000, 10);
    const answered = Date.now();
    const ready = nodes.a.logs.find((l) => l.msg === 'ready')!;
    const first = nodes.a.logs[0];
    expect(ready).toMatchObject({ from: 'disk' });
    // The process's own work (from its first log line: the disk snapshot read and applied) is what the
    // second covers; the Node.js and TypeScript start before it is printed beside it.
    const own = answered - (first.time as number);
    console.log(`restarted DNS node: first correct answer ${answered - spawned} ms after spawn, ${own} ms after its first log line`);
    expect(own).toBeLessThan(1000);
    expect(answered - spawned).toBeLessThan(10_000);
  });

  it('reconnects when control is back, and control records how long each node was without it', async () => {
    await new Promise((r) => setTimeout(r, 500)); // control stays down at least this long
    control = await startControl(controlPort);
    const gaps = () =>
      api('/v1/events?kind=dns.reconnected')
        .then((r) => r.json())
        .then((b) => (b as { events: { subject: string; data: { gapMs: number } }[] }).events);
    const events = await until(gaps, (e) => ['dns:dns-a', 'dns:dns-b'].every((s) => e.some((x) => x.subject === s)), 15_000, 200);
    const b = events.find((e) => e.subject === 'dns:dns-b')!;
    expect(b.data.gapMs).toBeGreaterThanOrEqual(500);
    expect(b.data.gapMs).toBeLessThanOrEqual(Date.now() - controlKilledAt);
    for (const n of Object.values(nodes)) await until(() => metricsOf(n!), (m) => /^arus_control_connected 1$/m.test(m));

    // Following control again: a drain moves Indonesian clients off Jakarta on both nodes.
    expect((await api('/v1/regions/jkt/drain', { method: 'POST', body: { reason: 'roles test' } })).status).toBe(200);
    await until(() => [indonesia(nodes.a!), indonesia(nodes.b!)], ([a, b]) => a.length > 0 && b.length > 0 && !a.some((x) => MOVED.includes(x)) && a.join() === b.join(), 5000, 50);
  });

  it('rejects a corrupted disk snapshot at start, counts it, and takes the next from control', async () => {
    await kill9(nodes.b!);
    const file = join(dir, 'b', 'snapshot.json');
    writeFileSync(file, readFileSync(file, 'utf8').replace('"Jakarta"', '"Djakarta"'));
    nodes.b = await startNode('b');
    expect(nodes.b.logs.find((l) => l.msg === 'snapshot rejected')).toMatchObject({ from: 'disk', err: expect.stringMatching(/sha256/) });
    expect(nodes.b.logs.find((l) => l.msg === 'ready')).toMatchObject({ from: 'control' });
    expect(await metricsOf(nodes.b)).toMatch(/^arus_snapshot_rejected_total\{source="disk"\} 1$/m);
    expect(indonesia(nodes.b)).toEqual(indonesia(nodes.a!));
    await until(() => readFileSync(file, 'utf8'), (t) => t.includes('"Jakarta"'));
  });

  it('control stops at SIGTERM with DNS nodes streaming from it, and the nodes keep answering', async () => {
    const exited = new Promise<number | null>((resolve) => control.proc.once('exit', resolve));
    const t0 = Date.now();
    control.proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(indonesia(nodes.a!).length).toBeGreaterThan(0);
    expect(indonesia(nodes.b!)).toEqual(indonesia(nodes.a!));
  });
});
