// The status page in a real browser (Debian's Chromium, driven by
// playwright-core): `arus up` with test-owned model servers, the page opened
// with a viewer token, Jakarta's servers crashed, and the page — without a
// reload — turning Jakarta's marker "down" and listing the failover.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/database.js';
import { createTokenStore } from '../src/db/tokens.js';
import type { SimServer } from '../src/sim/server.js';
import { ROOT, startArus, tempDir, until, type Running } from './helpers/arus.js';
import { REGION_IDS, regionsWithChecks, startZoneSims } from './helpers/regions.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && !process.env.CI) console.warn(`test/status.test.ts skipped: no ${CHROMIUM} (apt-get install -y chromium)`);
const ARTIFACTS = join(ROOT, 'test-artifacts');
const ADMIN = 'status-admin-token';

describe.skipIf(!hasChromium && !process.env.CI)('the status page', () => {
  const sims = new Map<string, SimServer>();
  let server: Running;
  let browser: Browser;
  let dbFile: string;
  let viewer: { id: number; token: string };

  const crash = (...zones: string[]) => Promise.all(zones.map((z) => sims.get(z)!.setFault({ kind: 'crash' })));
  const restore = (...zones: string[]) => Promise.all(zones.map((z) => sims.get(z)!.setFault({ kind: 'none' })));
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${server.api}${path}`, { headers, redirect: 'manual' });

  beforeAll(async () => {
    for (const [zone, sim] of await startZoneSims()) sims.set(zone, sim);
    const dir = tempDir();
    dbFile = join(dir, 'arus.db');
    const db = openDatabase(dbFile);
    try {
      viewer = createTokenStore(db).create({ role: 'viewer', name: 'status-test' });
    } finally {
      db.$client.close();
    }
    const regions = regionsWithChecks(dir, (zone) => sims.get(zone)!.port);
    const launching = chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    server = await startArus(['up', '--db', dbFile, '--regions', regions, '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off'], {
      env: { ARUS_ADMIN_TOKEN: ADMIN, ARUS_STATUS_OPEN: 'false' },
    });
    browser = await launching;
    await until(
      async () => ((await (await get('/v1/health', { authorization: `Bearer ${ADMIN}` })).json()) as { agents: { fresh: boolean }[] }).agents.filter((a) => a.fresh).length,
      (n) => n === 4,
    );
    mkdirSync(ARTIFACTS, { recursive: true });
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await Promise.all([...sims.values()].map((s) => s.stop()));
  });

  it('serves the page to anyone and the data only to a viewer; the cookie reads status and nothing else', async () => {
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'.*script-src 'sha256-/);
    const html = await page.text();
    expect(html).toContain('<h1>Arus status</h1>');
    // Nothing from elsewhere: no fonts, scripts, styles or tiles to fetch on a closed network.
    expect(html).not.toMatch(/(?:src|href)="(?:https?:)?\/\/|@import|url\(/);
    console.log(`status page: ${(Buffer.byteLength(html) / 1024).toFixed(1)} KiB`);

    for (const path of ['/v1/status', '/v1/events', '/v1/events/stream']) expect((await get(path)).status, path).toBe(401);
    const bearer = await get('/v1/status', { authorization: `Bearer ${viewer.token}` });
    expect(bearer.status).toBe(200);
    expect(((await bearer.json()) as { regions: { id: string }[] }).regions.map((r) => r.id).sort()).toEqual([...REGION_IDS].sort());

    // An admin token is never turned into a cookie; a bad one is refused.
    const admin = await get(`/?token=${ADMIN}`);
    expect(admin.status).toBe(403);
    expect(admin.headers.get('set-cookie')).toBeNull();
    expect(await admin.text()).toMatch(/takes a viewer token/);
    expect((await get('/?token=not-a-token')).status).toBe(401);

    const exchange = await get(`/?token=${viewer.token}`);
    expect(exchange.status).toBe(303);
    expect(exchange.headers.get('location')).toBe('/');
    const setCookie = exchange.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^arus_status=[^;]+;/);
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    const cookie = { cookie: setCookie.split(';')[0] };

    expect((await get('/v1/status', cookie)).status).toBe(200);
    expect((await get('/v1/events?limit=1', cookie)).status).toBe(200);
    // Other reads, and every write, ignore the cookie.
    for (const path of ['/v1/health', '/v1/regions', '/v1/audit', '/v1/resolve?name=api.gslb.example.com&client=192.0.2.1']) expect((await get(path, cookie)).status, path).toBe(401);
    const writes: [string, string, unknown][] = [
      ['POST', '/v1/regions/jkt/drain', { reason: 'cookie' }],
      ['PATCH', '/v1/regions/jkt', { name: 'Cookie' }],
      ['DELETE', '/v1/regions/mnl', undefined],
      ['POST', '/v1/capacity', {}],
    ];
    for (const [method, path, body] of writes) {
      const res = await fetch(`${server.api}${path}`, { method, headers: { ...cookie, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      expect(res.status, `${method} ${path}`).toBe(401);
    }
    const health = (await (await get('/v1/health', { authorization: `Bearer ${ADMIN}` })).json()) as { overrides: unknown[]; regions: { id: string; name: string }[] };
    expect(health.overrides).toEqual([]);
    expect(health.regions.map((r) => r.id).sort()).toEqual([...REGION_IDS].sort());
  });

  it('shows the regions up, then Jakarta down and the failover, live, at desktop and phone widths', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page: Page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));

    await page.goto(`${server.api}/?token=${viewer.token}`);
    expect(new URL(page.url()).search).toBe(''); // the token left the address bar
    expect(await page.evaluate(() => document.cookie)).not.toContain('arus_status'); // HttpOnly

    // Landmarks and headings.
    expect(await page.getByRole('banner').count()).toBe(1);
    expect(await page.getByRole('main').count()).toBe(1);
    expect(await page.getByRole('contentinfo').count()).toBe(1);
    await page.getByRole('heading', { level: 1, name: 'Arus status' }).waitFor();
    for (const name of ['Regions', 'Where clients are sent', 'Timeline', 'Round-trip time between probe regions']) await page.getByRole('heading', { level: 2, name, exact: true }).waitFor();
    expect(await page.getByLabel('Window').count()).toBe(1);

    // Four markers, each with its state in words.
    await page.waitForFunction(() => document.querySelectorAll('#markers .marker[data-state="up"]').length === 4);
    for (const [id, name] of [['sg', 'Singapore'], ['jkt', 'Jakarta'], ['bkk', 'Bangkok'], ['mnl', 'Manila']]) {
      expect(await page.getByRole('img', { name: `${name} (${id}): up` }).count()).toBe(1);
      expect(await page.locator(`#markers [data-region="${id}"] .word`).textContent()).toBe('up');
    }
    const indonesia = page.locator('#steering tr[data-country="ID"]');
    expect(await indonesia.getAttribute('data-region')).toBe('jkt');
    expect(await indonesia.locator('td').first().textContent()).toBe('Jakarta (jkt)');
    expect(await indonesia.locator('td').nth(1).textContent()).toMatch(/home of ID/);
    await page.waitForFunction(() => document.getElementById('conn')?.textContent === 'live');

    // Without a reload from here on: this survives only if the page does.
    await page.evaluate(() => ((window as unknown as { statusTestMarker: string }).statusTestMarker = 'no reload'));
    const t0 = Date.now();
    await crash('jkt-a', 'jkt-b');
    await page.waitForSelector('#markers [data-region="jkt"][data-state="down"]', { timeout: 8000 });
    const downMs = Date.now() - t0;
    await page.waitForSelector('#events li[data-kind="failover"]', { timeout: 8000 });
    const failoverMs = Date.now() - t0;
    console.log(`page: jkt down after ${downMs} ms, failover listed after ${failoverMs} ms`);
    expect(failoverMs).toBeLessThan(6000);
    expect(await page.locator('#markers [data-region="jkt"] .word').textContent()).toBe('down');
    expect(await page.getByRole('img', { name: 'Jakarta (jkt): down' }).count()).toBe(1);
    const toSg = page.locator('#events li[data-kind="failover"]', { hasText: 'service:api: jkt → sg' });
    expect(await toSg.count()).toBe(1);
    expect(await toSg.locator('.reason').textContent()).toMatch(/ID.*: api moved jkt → sg/);
    await page.waitForFunction(() => document.querySelector('#steering tr[data-country="ID"]')?.getAttribute('data-region') === 'sg');
    expect(await indonesia.locator('td').nth(1).textContent()).toMatch(/^jkt down → next in rank/);
    expect(await page.locator('#region-jkt h3').textContent()).toMatch(/Jakarta \(jkt\) down/);
    expect(await page.evaluate(() => (window as unknown as { statusTestMarker?: string }).statusTestMarker)).toBe('no reload');

    await page.screenshot({ path: join(ARTIFACTS, 'status-1280.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow, 'horizontal overflow at 390 px').toBeLessThanOrEqual(0);
    await page.screenshot({ path: join(ARTIFACTS, 'status-390.png'), fullPage: true });

    // Fail-back shows up the same way.
    await restore('jkt-a', 'jkt-b');
    await page.waitForSelector('#markers [data-region="jkt"][data-state="up"]', { timeout: 10_000 });
    await page.waitForSelector('#events li[data-kind="failback"]', { timeout: 5000 });
    expect(await page.evaluate(() => (window as unknown as { statusTestMarker?: string }).statusTestMarker)).toBe('no reload');
    expect(errors).toEqual([]);
    await context.close();
  }, 60_000);

  it('ends the cookie when its token is revoked', async () => {
    const exchange = await get(`/?token=${viewer.token}`);
    const cookie = { cookie: (exchange.headers.get('set-cookie') ?? '').split(';')[0] };
    expect((await get('/v1/status', cookie)).status).toBe(200);
    const db = openDatabase(dbFile);
    try {
      expect(createTokenStore(db).revoke(viewer.id)).toBe(true);
    } finally {
      db.$client.close();
    }
    const after = await get('/v1/status', cookie);
    expect(after.status).toBe(401);
    expect(after.headers.get('set-cookie')).toMatch(/^arus_status=;.*Max-Age=0/);
  });
});
