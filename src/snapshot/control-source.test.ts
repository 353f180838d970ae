import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getRequestListener } from '@hono/node-server';
import { afterEach, describe, expect, it } from 'vitest';
import { testApi } from '../api/testing.js';
import { createTokenStore } from '../db/tokens.js';
import { defaultConfig } from '../dns/fixtures.js';
import { silentLogger } from '../log.js';
import { createControlStateSource, type ControlSourceOptions, type ControlStateSource } from './control-source.js';
import { encodeSnapshot, type SnapshotDocument } from './document.js';
import { createSnapshotFile } from './file.js';
import { buildSnapshot } from './snapshot.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function listen(server: Server): Promise<string> {
  cleanup.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

/** The real control API on a loopback port, with a dns token. */
async function realControl() {
  const api = testApi();
  const token = createTokenStore(api.db).create({ role: 'dns', node: 'dns-test' }).token;
  const serve = getRequestListener(api.app.fetch);
  return { api, token, url: await listen(createServer((req, res) => void serve(req, res))) };
}

/** A stand-in for control that does whatever `handle` says with each stream request (`n` counts them from 0). */
async function fakeControl(handle: (req: IncomingMessage, res: ServerResponse, n: number) => void) {
  const requests: URL[] = [];
  const times: number[] = [];
  const server = createServer((req, res) => {
    requests.push(new URL(req.url!, 'http://x'));
    times.push(Date.now());
    handle(req, res, requests.length - 1);
  });
  return { url: await listen(server), requests, times };
}

const sse = (res: ServerResponse, event: string, data: string) => res.write(`event: ${event}\ndata: ${data}\n\n`);
const open = (res: ServerResponse, keepaliveMs = 5000) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  sse(res, 'hello', JSON.stringify({ keepaliveMs }));
};

function source(opts: Partial<ControlSourceOptions> & { url: string }): ControlStateSource {
  const s = createControlStateSource({ token: 't', node: 'dns-test', log: silentLogger(), backoff: { minMs: 20, maxMs: 200 }, ...opts });
  cleanup.push(() => s.stop());
  return s;
}

const tempFile = () => createSnapshotFile(join(mkdtempSync(join(tmpdir(), 'arus-source-')), 'snapshot.json'));
const doc = (version: number, name = 'Jakarta') => {
  const config = defaultConfig();
  config.regions.find((r) => r.id === 'jkt')!.name = name;
  return encodeSnapshot(buildSnapshot(config, version));
};
/** The document with a field changed and the checksum made right: only the content is wrong. */
function resealed(text: string, change: (d: SnapshotDocument) => void): string {
  const d = JSON.parse(text) as SnapshotDocument;
  change(d);
  const { format, version, state } = d;
  return JSON.stringify({ format, version, state, sha256: createHash('sha256').update(JSON.stringify({ format, version, state })).digest('hex') });
}
const until = async (ok: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('control state source', () => {
  it("follows control's stream: the snapshot at once, each change after, the last good one on disk", async () => {
    const control = await realControl();
    const file = tempFile();
    const s = source({ url: control.url, token: control.token, file });
    const first = await s.ready();
    expect(first.snapshot).toEqual(control.api.control.current().snapshot);
    expect(s.stats()).toMatchObject({ connected: true, from: 'control', applied: { control: 1, disk: 0 } });

    expect((await control.api.call('PATCH', '/v1/regions/jkt', { body: { name: 'Jakarta Raya' } })).status).toBe(200);
    control.api.control.tick();
    await until(() => s.current().snapshot.regionById.get('jkt')!.name === 'Jakarta Raya');
    expect(s.current().snapshot.version).toBe(control.api.control.current().snapshot.version);
    expect(s.current().locator).toBe(first.locator);
    await until(() => file.read()?.includes('Jakarta Raya') ?? false);
  });

  it('answers at once from the file while control is unreachable, and tells control the gap when it gets through', async () => {
    const file = tempFile();
    writeFileSync(file.path, doc(7));
    let up = false;
    const control = await fakeControl((_req, res) => {
      if (!up) return res.writeHead(503).end('starting');
      open(res);
      sse(res, 'snapshot', doc(9, 'Jakarta Raya'));
    });
    const s = source({ url: control.url, file });
    expect(s.current().snapshot.version).toBe(7);
    expect(s.stats()).toMatchObject({ from: 'disk', connected: false, applied: { disk: 1 } });
    await until(() => control.requests.length >= 2);
    expect(control.requests[0].searchParams.get('gapMs')).toBeNull();
    expect(control.requests[1].searchParams.get('version')).toBe('7');
    up = true;
    await until(() => s.stats().version === 9);
    const last = control.requests[control.requests.length - 1].searchParams;
    expect(last.get('node')).toBe('dns-test');
    // The gap runs from the first failed try (after the first request) to the try that got through.
    expect(Number(last.get('gapMs'))).toBeGreaterThan(0);
    expect(Number(last.get('gapMs'))).toBeLessThanOrEqual(Date.now() - control.times[0]);
    expect(s.stats()).toMatchObject({ connected: true, from: 'control', lostAt: undefined });
    await until(() => file.read()?.includes('Jakarta Raya') ?? false);
  });

  it('rejects a corrupted or invalid snapshot from control, counts it, and keeps the old one, on disk too', async () => {
    const file = tempFile();
    const good = doc(5);
    const control = await fakeControl((_req, res) => {
      open(res);
      sse(res, 'snapshot', good);
      sse(res, 'snapshot', doc(6).replace('"Singapore"', '"Singapura"'));
      sse(res, 'snapshot', resealed(doc(6), (d) => (d.state.regions[0].zones[0].endpoints[0].address = 'not-an-address')));
      sse(res, 'snapshot', '{"format":1');
    });
    const s = source({ url: control.url, file });
    await until(() => s.stats().rejected.control === 3);
    expect(s.stats()).toMatchObject({ version: 5, applied: { control: 1 } });
    expect(s.current().snapshot.regionById.get('sg')!.name).toBe('Singapore');
    await until(() => file.read() === good);
  });

  it('rejects a corrupted file at start and waits for control', async () => {
    const file = tempFile();
    writeFileSync(file.path, doc(7).slice(0, 500));
    const control = await fakeControl((_req, res) => {
      open(res);
      sse(res, 'snapshot', doc(8));
    });
    const s = source({ url: control.url, file });
    expect(() => s.current()).toThrow(/no snapshot yet/);
    expect(s.stats().rejected.disk).toBe(1);
    expect((await s.ready()).snapshot.version).toBe(8);
    await until(() => file.read() === doc(8));
  });

  it('gives up on a silent control after three keep-alive intervals and reconnects', async () => {
    const control = await fakeControl((_req, res, n) => {
      open(res, 50);
      sse(res, 'snapshot', doc(10 + n));
    });
    const s = source({ url: control.url });
    await s.ready();
    await until(() => control.requests.length >= 2, 2000);
    expect(control.times[1] - control.times[0]).toBeGreaterThanOrEqual(140);
    expect(Number(control.requests[1].searchParams.get('gapMs'))).toBeGreaterThanOrEqual(0);
    await until(() => s.stats().version === 11);
  });

  it('waits out its back-off between tries on the real clock', async () => {
    const control = await fakeControl((_req, res) => res.writeHead(503).end());
    source({ url: control.url, backoff: { minMs: 20, maxMs: 160 }, random: () => 1 });
    await until(() => control.requests.length >= 7, 5000);
    const gaps = control.times.slice(1).map((t, i) => t - control.times[i]);
    // At least 20, 40, 80, 160, 160, 160 ms (random() = 1: the full delay); a busy machine adds to each, so
    // only the floor is checked here. The exact delays and the jitter: control-stream.test.ts, on a hand-moved clock.
    expect(gaps[0]).toBeGreaterThanOrEqual(18);
    expect(gaps[2]).toBeGreaterThanOrEqual(75);
    for (const g of gaps.slice(3)) expect(g).toBeGreaterThanOrEqual(150);

    const halved = await fakeControl((_req, res) => res.writeHead(503).end());
    source({ url: halved.url, backoff: { minMs: 160, maxMs: 160 }, random: () => 0 });
    await until(() => halved.requests.length >= 3, 5000);
    expect(halved.times[2] - halved.times[1]).toBeGreaterThanOrEqual(75);
  });
});
