// Roles that follow any replica of control, with real processes: one real
// `arus control` and, beside it, a small "lagging replica" (an HTTP server of
// this test) that serves an older snapshot over the same protocol (`hello`,
// `snapshot`, and /v1/snapshots/current). A DNS node given both keeps the
// newer version; when the real control is killed it moves to the lagging one,
// keeps its own version (the lagging one's is older: refused, counted) and
// keeps answering; when control is back with something newer, the node moves
// back to it by itself. A probe agent given a dead URL and a live one keeps
// reporting to the live one, and its /healthz says so.
import { createHash } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arusAsync, freePort, startArus, tempDir, until, type Running } from './helpers/arus.js';
import { certsInit, createToken, tlsFetch } from './helpers/credentials.js';
import { dig, hasDig } from './helpers/dig.js';
import { regionsWithChecks } from './helpers/regions.js';

const requireDig = process.env.CI ? true : hasDig;
const ADMIN = 'follow-admin';
const env = { ARUS_ADMIN_TOKEN: ADMIN };
/** Where the lagging replica's (older) snapshot puts Jakarta: a node that took it would answer these. */
const LAGGING = ['198.51.100.31', '198.51.100.32'];

type Doc = { format: number; version: number; sha256: string; state: { regions: { id: string; zones: { id: string; endpoints: { address: string; weight: number }[] }[] }[]; health: Record<string, unknown> } };

/** The real document, made older and different (Jakarta moved), with a checksum that is right: valid, only older. */
function olderDocument(real: Doc, version: number): string {
  const state = structuredClone(real.state);
  const jkt = state.regions.find((r) => r.id === 'jkt')!;
  jkt.zones.forEach((z, i) => (z.endpoints = [{ address: LAGGING[i], weight: z.endpoints[0].weight }]));
  state.health = Object.fromEntries(state.regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints.map((e) => [`${r.id}/${z.id}/${e.address}`, { state: 'up', reason: 'the lagging replica', transition: false }]))));
  const body = { format: real.format, version, state };
  return JSON.stringify({ ...body, sha256: createHash('sha256').update(JSON.stringify(body)).digest('hex') });
}

/** A replica that lags: it streams `doc` (and serves it as current), with pings so it never looks silent. */
async function laggingReplica(doc: () => string): Promise<{ url: string; streams: () => number; close(): Promise<void> }> {
  let streams = 0;
  const open = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url!, 'http://x').pathname;
    if (path === '/v1/snapshots/current') return void res.writeHead(200, { 'content-type': 'application/json' }).end(doc());
    if (path !== '/v1/snapshots/stream') return void res.writeHead(404).end();
    streams++;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`event: hello\ndata: ${JSON.stringify({ keepaliveMs: 1000 })}\n\n`);
    res.write(`event: snapshot\ndata: ${doc()}\n\n`);
    const ping = setInterval(() => res.write('event: ping\ndata: {}\n\n'), 1000);
    open.add(res);
    res.on('close', () => (clearInterval(ping), open.delete(res)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    streams: () => streams,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

describe.skipIf(!requireDig)('roles following several replicas of control', () => {
  let dir: string;
  let db: string;
  let regions: string;
  let control: Running;
  let controlPort: number;
  let lagging: Awaited<ReturnType<typeof laggingReplica>>;
  let laggingDoc = '';
  let node: Running;
  let probe: Running;
  let deadUrl: string;
  let healthUrl: string;
  /** The version the real control had when the node started following. */
  let newest = 0;

  const api = (path: string, init: { method?: string; body?: unknown } = {}) =>
    fetch(`http://127.0.0.1:${controlPort}${path}`, { method: init.method ?? 'GET', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: init.body === undefined ? undefined : JSON.stringify(init.body) });
  const startControl = (port = 0) => startArus(['control', '--db', db, '--regions', regions, '--api-listen', `127.0.0.1:${port}`], { env, timeoutMs: 30_000 });
  const indonesia = () =>
    dig('127.0.0.1', node.dnsPort, ['api.gslb.example.com', 'A', '+subnet=36.66.0.0/24'])
      .answers.filter((a) => a.type === 'A')
      .map((a) => a.data)
      .sort();
  const metrics = async () => (await fetch(node.logs.find((l) => l.msg === 'ready')!.metrics as string)).text();
  const metric = (text: string, name: string) => Number(new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1]);
  const health = async () => (await (await fetch(healthUrl)).json()) as { ok: boolean; controlUp: boolean; controls: { url: string; up: boolean; lastReportAt: string | null }[]; rounds: number };

  beforeAll(async () => {
    dir = tempDir('arus-follow-');
    db = join(dir, 'arus.db');
    regions = regionsWithChecks(dir, () => undefined);
    const dnsToken = createToken(db, { role: 'dns', node: 'dns-f' });
    const probeToken = createToken(db, { role: 'probe', agent: 'sg-1', region: 'sg' });
    control = await startControl();
    controlPort = Number(new URL(control.api!).port);
    // A change, so the real control's version is ahead of what the lagging replica serves.
    expect((await api('/v1/regions/sg', { method: 'PATCH', body: { name: 'Singapore (followed)' } })).status).toBe(200);
    const real = (await (await api('/v1/snapshots/current')).json()) as Doc;
    newest = real.version;
    laggingDoc = olderDocument(real, newest - 1);
    lagging = await laggingReplica(() => laggingDoc);

    node = await startArus(['dns', '--control', `${control.api},${lagging.url}`, '--token', dnsToken, '--snapshot', join(dir, 'dns', 'snapshot.json'), '--dns-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'], { timeoutMs: 30_000 });
    deadUrl = `http://127.0.0.1:${await freePort()}`;
    healthUrl = `http://127.0.0.1:${await freePort()}/healthz`;
    probe = await startArus(['probe', '--control', `${deadUrl},${control.api}`, '--token', probeToken, '--interval', '200', '--health-listen', new URL(healthUrl).host], { timeoutMs: 30_000 });
  }, 90_000);

  afterAll(async () => {
    await probe?.stop();
    await node?.stop();
    await control?.stop();
    await lagging?.close();
  });

  it('the DNS node follows the first replica and holds its newest version', async () => {
    expect(node.logs.find((l) => l.msg === 'ready')).toMatchObject({ from: 'control', control: [control.api, lagging.url] });
    await until(metrics, (m) => metric(m, 'arus_snapshot_version') >= newest);
    const m = await metrics();
    expect(metric(m, `arus_control_replica_connected{control="${control.api}"}`)).toBe(1);
    expect(metric(m, `arus_control_replica_connected{control="${lagging.url}"}`)).toBe(0);
    const answers = indonesia();
    expect(answers.length).toBeGreaterThan(0);
    expect(answers.some((a) => LAGGING.includes(a))).toBe(false);
  });

  it('the probe agent reports to the live replica past a dead one, and its /healthz says which is which', async () => {
    expect(probe.logs.find((l) => l.msg === 'ready')).toMatchObject({ agent: 'sg-1', region: 'sg', health: healthUrl, control: [deadUrl, control.api] });
    const first = await until(health, (h) => h.controls[1].lastReportAt !== null, 10_000);
    expect(first).toMatchObject({ ok: true, controlUp: true, controls: [{ url: deadUrl, up: false, lastReportAt: null }, { url: control.api, up: true }] });
    // It moves: later reports, more rounds.
    const later = await until(health, (h) => h.controls[1].lastReportAt! > first.controls[1].lastReportAt! && h.rounds > first.rounds, 10_000);
    expect(later.controls[0]).toEqual({ url: deadUrl, up: false, lastReportAt: null });
    // Control has the agent's reports.
    const agents = ((await (await api('/v1/probes')).json()) as { agents: { id: string }[] }).agents;
    expect(agents.map((a) => a.id)).toContain('sg-1');
  });

  it('control killed: the node moves to the lagging replica, keeps its newer version, and answers as before', async () => {
    const before = indonesia();
    const exited = new Promise((r) => control.proc.once('exit', r));
    control.proc.kill('SIGKILL');
    await exited;
    const m = await until(metrics, (t) => metric(t, `arus_control_replica_connected{control="${lagging.url}"}`) === 1, 15_000);
    expect(lagging.streams()).toBeGreaterThanOrEqual(1);
    expect(metric(m, 'arus_control_connected')).toBe(1);
    expect(metric(m, 'arus_snapshot_version')).toBe(newest);
    expect(metric(m, `arus_snapshot_older_total{control="${lagging.url}"}`)).toBeGreaterThanOrEqual(1);
    expect(metric(m, 'arus_snapshot_rejected_total{source="control"}')).toBe(0);
    for (let i = 0; i < 5; i++) {
      expect(indonesia()).toEqual(before);
      await new Promise((r) => setTimeout(r, 200));
    }
    // Said once, however many older snapshots came.
    expect(node.logs.filter((l) => l.msg === 'replica lags: its snapshot is older than the one held; keeping ours')).toEqual([expect.objectContaining({ control: lagging.url, held: newest })]);
    // The probe agent's /healthz: no replica takes its reports now.
    await until(health, (h) => !h.controlUp && h.controls.every((c) => !c.up), 10_000);
  });

  it('control back with something newer: the node leaves the lagging replica for it by itself', async () => {
    control = await startControl(controlPort);
    expect((await api('/v1/regions/sg', { method: 'PATCH', body: { name: 'Singapore (back)' } })).status).toBe(200);
    const current = ((await (await api('/v1/snapshots/current')).json()) as Doc).version;
    expect(current).toBeGreaterThan(newest);
    // The node asks the other replicas every 5 s while it streams from one that lags.
    await until(metrics, (t) => metric(t, 'arus_snapshot_version') >= current && metric(t, `arus_control_replica_connected{control="${control.api}"}`) === 1, 20_000);
    expect(node.logs.find((l) => l.msg === 'moving to a replica that is not behind')).toMatchObject({ from: lagging.url, to: control.api });
    expect(indonesia().some((a) => LAGGING.includes(a))).toBe(false);
    await until(health, (h) => h.controlUp && h.controls[1].up && !h.controls[0].up, 10_000);
  });

  it('SIGTERM while streaming: the node stops at once and exits 0 (its stream is aborted before its link to control closes)', async () => {
    const exited = new Promise<number | null>((r) => node.proc.once('exit', (code) => r(code)));
    const t = Date.now();
    node.proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    // Without the order, undici's graceful close waits for control to end the stream (stopProcess's SIGKILL comes at 3 s).
    expect(Date.now() - t).toBeLessThan(2500);
  });
});

describe("the probe agent's /healthz listener", () => {
  it('is refused in plain text off loopback, before anything starts', async () => {
    const r = await arusAsync(['probe', '--control', `http://127.0.0.1:${await freePort()}`, '--token', 't', '--health-listen', '0.0.0.0:0']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/the probe agent's \/healthz would listen in plain text on 0\.0\.0\.0:0, off loopback: give --tls-cert FILE --tls-key FILE/);
  });

  it('serves HTTPS with --tls-cert and --tls-key', async () => {
    const dir = tempDir('arus-probe-health-');
    const db = join(dir, 'arus.db');
    const certs = certsInit(join(dir, 'tls'));
    const token = createToken(db, { role: 'probe', agent: 'jkt-1', region: 'jkt' });
    const control = await startArus(['control', '--db', db, '--regions', regionsWithChecks(dir, () => undefined), '--api-listen', '127.0.0.1:0'], { env, timeoutMs: 30_000 });
    const port = await freePort();
    const probe = await startArus(['probe', '--control', control.api!, '--token', token, '--health-listen', `127.0.0.1:${port}`, ...certs.serverArgs()], { timeoutMs: 30_000 });
    const client = tlsFetch(certs.ca);
    try {
      expect(probe.logs.find((l) => l.msg === 'ready')).toMatchObject({ health: `https://127.0.0.1:${port}/healthz` });
      const body = await until(async () => (await (await client.fetch(`https://127.0.0.1:${port}/healthz`)).json()) as { ok: boolean; controls: { up: boolean; lastReportAt: string | null }[] }, (h) => h.controls[0].lastReportAt !== null, 10_000);
      expect(body).toMatchObject({ ok: true, agent: { id: 'jkt-1', region: 'jkt' }, controls: [{ url: control.api, up: true }] });
      // Plain HTTP on that port gets no answer.
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    } finally {
      await client.close();
      await probe.stop();
      await control.stop();
    }
  });
});
