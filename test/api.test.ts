// The admin API over real HTTP, against `arus up`: a write reaches DNS
// answers (dig) within a second, without a restart.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arusAsync as arus, startArus, tempDir, type Running } from './helpers/arus.js';
import { dig, hasDig } from './helpers/dig.js';
import { regionsWithChecks } from './helpers/regions.js';

const requireDig = process.env.CI ? true : hasDig;
const ADMIN = 'e2e-admin-token';

describe.skipIf(!requireDig)('admin API end to end', () => {
  let server: Running;
  let db: string;
  const indonesia = () =>
    dig('127.0.0.1', server.dnsPort, ['api.gslb.example.com', 'A', '+subnet=36.66.0.0/24'])
      .answers.filter((a) => a.type === 'A')
      .map((a) => a.data)
      .sort();
  const api = (method: string, path: string, body?: unknown, token = ADMIN) =>
    fetch(`${server.api}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  /** Polls dig until the answer matches, returning how long it took (ms). */
  const within = async (want: string[], ms: number) => {
    const t0 = Date.now();
    await expect.poll(indonesia, { timeout: ms, interval: 25 }).toEqual(want);
    return Date.now() - t0;
  };

  beforeAll(async () => {
    const dir = tempDir();
    db = join(dir, 'arus.db');
    // No checks and no demo balancers: this file is about writes reaching answers. With the balancers
    // (and --sim off) every region's evidence would soon say 0 instances ready, and a drain would have
    // nowhere healthy to send Indonesia; they also listen on the fixed ports a running `npm start` holds.
    const regions = regionsWithChecks(dir, () => undefined);
    server = await startArus(['up', '--db', db, '--regions', regions, '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off'], { env: { ARUS_ADMIN_TOKEN: ADMIN } });
  });
  afterAll(async () => server?.stop());

  it('PUT a region with new addresses: dig returns them within a second', async () => {
    expect(indonesia()).toEqual(['127.0.1.21', '127.0.1.22']);
    const region = (await (await api('GET', '/v1/regions/jkt')).json()) as { zones: { endpoints: { address: string }[] }[] };
    region.zones[0].endpoints = [{ address: '198.51.100.71' }];
    region.zones[1].endpoints = [{ address: '198.51.100.72' }];
    const res = await api('PUT', '/v1/regions/jkt', region);
    expect(res.status).toBe(200);
    expect(await within(['198.51.100.71', '198.51.100.72'], 1000)).toBeLessThan(1000);
  });

  it('drain moves the clients and records an event; undrain brings them back', async () => {
    const drain = await api('POST', '/v1/regions/jkt/drain', { reason: 'e2e maintenance' });
    expect(drain.status).toBe(200);
    expect(await within(['127.0.1.11', '127.0.1.12'], 1000)).toBeLessThan(1000);
    const events = (await (await api('GET', '/v1/events?kind=drain')).json()) as { events: { subject: string; reason: string }[] };
    expect(events.events[0]).toMatchObject({ subject: 'region:jkt' });
    expect(events.events[0].reason).toMatch(/e2e maintenance/);
    expect((await arus(['events', '--db', db, '--kind', 'failover'])).stdout).toMatch(/jkt → sg/);
    expect((await api('POST', '/v1/regions/jkt/undrain')).status).toBe(200);
    await within(['198.51.100.71', '198.51.100.72'], 1000);
  });

  it('refuses a viewer token made with `arus token create` the right to write, and records who wrote', async () => {
    const created = await arus(['token', 'create', '--role', 'viewer', '--name', 'grafana', '--db', db]);
    expect(created.code).toBe(0);
    const token = /(arus_[\w-]+)/.exec(created.stdout)![1];
    expect((await api('GET', '/v1/regions', undefined, token)).status).toBe(200);
    expect((await api('POST', '/v1/regions/jkt/drain', { reason: 'x' }, token)).status).toBe(403);
    expect((await api('GET', '/v1/regions')).status).toBe(200);
    const audit = (await (await api('GET', '/v1/audit?subject=region:jkt')).json()) as { entries: { actor: string; action: string }[] };
    expect(audit.entries.map((e) => e.action)).toEqual(expect.arrayContaining(['PUT /v1/regions/jkt', 'POST /v1/regions/jkt/drain']));
    expect(audit.entries.every((e) => e.actor === 'bootstrap-admin')).toBe(true);
    const revoked = await arus(['token', 'revoke', /created token (\d+)/.exec(created.stdout)![1], '--db', db]);
    expect(revoked.code).toBe(0);
    expect((await api('GET', '/v1/regions', undefined, token)).status).toBe(401);
  });

  it('exposes Prometheus metrics: DNS answers by region, API requests, events', async () => {
    const res = await fetch(`${server.api}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    expect(value(/^arus_dns_queries_total\{rcode="NOERROR"\} (\d+)/m)).toBeGreaterThan(0);
    expect(value(/^arus_dns_answers_total\{region="jkt"\} (\d+)/m)).toBeGreaterThan(0);
    expect(value(/^arus_dns_answers_total\{region="sg"\} (\d+)/m)).toBeGreaterThan(0);
    expect(value(/^arus_events_total\{kind="drain"\} (\d+)/m)).toBe(1);
    expect(value(/^arus_failovers_total\{kind="failover"\} (\d+)/m)).toBeGreaterThan(0);
    expect(value(/^arus_api_requests_total\{method="POST",route="\/v1\/regions\/:id\/drain",status="200"\} (\d+)/m)).toBe(1);
    expect(text).toMatch(/^arus_dns_decision_seconds_count \d+/m);
  });
});
