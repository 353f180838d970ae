// Static records, black-box: `arus up` (DNS on worker threads) and a DNS node
// reading its database (`arus dns --db`), queried by dig on real sockets; records
// written through the API and with `arus apply`, and the refusals of both.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arus, ROOT, startArus, tempDir, type Running } from './helpers/arus.js';
import { dig, digAsync, hasDig } from './helpers/dig.js';

const requireDig = process.env.CI ? true : hasDig;
const APEX = 'gslb.example.com';
const ADMIN = 'records-admin-token';
const DKIM = `v=DKIM1; k=rsa; p=${'A'.repeat(300)}`;

const RECORDS = `records:
  - { name: "@", type: CAA, values: ['0 issue "letsencrypt.org"', '0 iodef "mailto:security@example.com"'] }
  - { name: "@", type: MX, values: ["10 mx1.example.net.", "20 mx2.example.net."] }
  - { name: web, type: A, values: [192.0.2.80, 192.0.2.81] }
  - { name: web, type: AAAA, value: "2001:db8::80" }
  - { name: www, type: CNAME, ttl: 120, value: web.gslb.example.com. }
  - { name: _verify, type: TXT, values: [first, second] }
  - { name: dkim._domainkey, type: TXT, value: "${DKIM}" }
  - { name: _https._tcp.web, type: SRV, value: "10 5 443 web.gslb.example.com." }
  - { name: "*.dev", type: A, value: 192.0.2.90 }
  - { name: real.dev, type: TXT, value: real }
  - { name: big, type: TXT, values: [${Array.from({ length: 10 }, (_, i) => `"${i}-${'x'.repeat(70)}"`).join(', ')}] }
`;

describe.skipIf(!requireDig)('static records over real sockets', () => {
  let up: Running;
  let node: Running;
  let dir: string;
  let db: string;
  const q = (args: string[], port = up.dnsPort) => dig('127.0.0.1', port, ['+norec', ...args]);
  const data = (r: ReturnType<typeof dig>, type: string) => r.answers.filter((a) => a.type === type).map((a) => a.data);
  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${up.api}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });

  beforeAll(async () => {
    dir = tempDir();
    db = join(dir, 'arus.db');
    cpSync(join(ROOT, 'regions'), join(dir, 'regions'), { recursive: true });
    for (const r of ['sg', 'jkt', 'bkk', 'mnl']) {
      const f = join(dir, 'regions', `${r}.yaml`);
      writeFileSync(f, readFileSync(f, 'utf8').replace(/\n\s+check: \{[^}]*\}/g, '').replace(/^balancer:\n(?:[ #].*\n)*/m, ''));
    }
    const zone = join(dir, 'regions', 'zone.yaml');
    writeFileSync(zone, readFileSync(zone, 'utf8').replace(/^records:\n(?:[ #].*\n)*/m, '') + RECORDS);
    up = await startArus(['up', '--db', db, '--regions', join(dir, 'regions'), '--workers', '2', '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off'], { env: { ARUS_ADMIN_TOKEN: ADMIN } });
    node = await startArus(['dns', '--db', db, '--workers', '0', '--dns-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0']);
  }, 60_000);
  afterAll(async () => {
    await node?.stop();
    await up?.stop();
  });

  it('serves every type as written, authoritatively', () => {
    const a = q([`web.${APEX}`, 'A']);
    expect(a.flags).toContain('aa');
    expect(a.answers.map((x) => [x.name, x.ttl, x.type])).toEqual([
      [`web.${APEX}.`, 300, 'A'],
      [`web.${APEX}.`, 300, 'A'],
    ]);
    expect(data(a, 'A').sort()).toEqual(['192.0.2.80', '192.0.2.81']);
    expect(data(q([`web.${APEX}`, 'AAAA']), 'AAAA')).toEqual(['2001:db8::80']);
    expect(data(q([APEX, 'CAA']), 'CAA').sort()).toEqual(['0 iodef "mailto:security@example.com"', '0 issue "letsencrypt.org"']);
    expect(data(q([APEX, 'MX']), 'MX')).toEqual(['10 mx1.example.net.', '20 mx2.example.net.']);
    expect(data(q([`_https._tcp.web.${APEX}`, 'SRV']), 'SRV')).toEqual([`10 5 443 web.${APEX}.`]);
    expect(data(q([`_verify.${APEX}`, 'TXT']), 'TXT').sort()).toEqual(['"first"', '"second"']);
    // One record, its value over 255 octets in two strings.
    expect(data(q([`dkim._domainkey.${APEX}`, 'TXT']), 'TXT')).toEqual([`"${DKIM.slice(0, 255)}" "${DKIM.slice(255)}"`]);
  });

  it('the DNS node on the database answers the same', () => {
    expect(data(q([APEX, 'CAA'], node.dnsPort), 'CAA').sort()).toEqual(['0 iodef "mailto:security@example.com"', '0 issue "letsencrypt.org"']);
    expect(data(q([`www.${APEX}`, 'A'], node.dnsPort), 'A').sort()).toEqual(['192.0.2.80', '192.0.2.81']);
  });

  it('a CNAME answers every type, with its in-zone target after it', () => {
    const r = q([`www.${APEX}`, 'A']);
    expect(r.status).toBe('NOERROR');
    expect(r.answers.map((x) => [x.name, x.type])).toEqual([
      [`www.${APEX}.`, 'CNAME'],
      [`web.${APEX}.`, 'A'],
      [`web.${APEX}.`, 'A'],
    ]);
    expect(r.answers[0]).toMatchObject({ ttl: 120, data: `web.${APEX}.` });
    const txt = q([`www.${APEX}`, 'TXT']);
    expect([txt.status, txt.answers.map((x) => x.type), txt.authority.map((x) => x.type)]).toEqual(['NOERROR', ['CNAME'], ['SOA']]);
  });

  it('NODATA for another type, NXDOMAIN below, NODATA at an empty non-terminal', () => {
    const nodata = q([`web.${APEX}`, 'MX']);
    expect([nodata.status, nodata.answers.length, nodata.authority.map((x) => x.type)]).toEqual(['NOERROR', 0, ['SOA']]);
    const nx = q([`x.web.${APEX}`, 'A']);
    expect([nx.status, nx.flags.includes('aa'), nx.authority.map((x) => x.type)]).toEqual(['NXDOMAIN', true, ['SOA']]);
    expect(q([`_tcp.web.${APEX}`, 'SRV']).status).toBe('NOERROR');
  });

  it('a wildcard answers names that do not exist, as asked, and not names that exist or below them', () => {
    const wild = q([`Pr-7.Dev.${APEX}`, 'A']);
    expect(wild.answers.map((x) => [x.name, x.data])).toEqual([[`Pr-7.Dev.${APEX}.`, '192.0.2.90']]);
    expect(data(q([`a.b.dev.${APEX}`, 'A']), 'A')).toEqual(['192.0.2.90']);
    const exists = q([`real.dev.${APEX}`, 'A']);
    expect([exists.status, exists.answers.length]).toEqual(['NOERROR', 0]);
    expect(q([`x.real.dev.${APEX}`, 'A']).status).toBe('NXDOMAIN');
  });

  it('a TXT RRset over 512 octets: TC without EDNS; dig retries over TCP and gets it whole', () => {
    const udp = q(['+noedns', '+ignore', `big.${APEX}`, 'TXT']);
    expect(udp.flags).toContain('tc');
    expect(udp.answers).toEqual([]);
    expect(q(['+noedns', `big.${APEX}`, 'TXT']).answers).toHaveLength(10);
  });

  it('a record PUT through the API is answered by both nodes within a second, and gone when deleted', async () => {
    const name = `_acme-challenge.${APEX}`;
    const answered = (port: number) => async () => (await digAsync('127.0.0.1', port, ['+norec', name, 'TXT'])).answers.map((a) => a.data);
    const t0 = Date.now();
    const res = await api('PUT', '/v1/records/_acme-challenge/TXT', { ttl: 60, value: 'dns-01-token' });
    expect(res.status).toBe(201);
    for (const port of [up.dnsPort, node.dnsPort]) await expect.poll(answered(port), { timeout: 3000, interval: 25 }).toEqual(['"dns-01-token"']);
    const added = Date.now() - t0;
    expect((await api('DELETE', '/v1/records/_acme-challenge/TXT')).status).toBe(200);
    const t1 = Date.now();
    for (const port of [up.dnsPort, node.dnsPort]) await expect.poll(async () => (await digAsync('127.0.0.1', port, ['+norec', name, 'TXT'])).status, { timeout: 3000, interval: 25 }).toBe('NXDOMAIN');
    const gone = Date.now() - t1;
    console.log(`records: answered by both nodes ${added} ms after the PUT's start, gone ${gone} ms after the DELETE`);
    // The promise is a second; 3 s is the margin the test allows.
    expect(added).toBeLessThan(3000);
    expect(gone).toBeLessThan(3000);
  });

  it('refuses an invalid record through the API (400 with the field) and with `arus apply` (the file and field), changing nothing', async () => {
    const res = await api('PUT', '/v1/records/www/TXT', { value: 'beside the CNAME' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ fields: [{ path: 'body.type', message: expect.stringMatching(/CNAME cannot be beside other data/) }] });

    const bad = join(dir, 'bad');
    cpSync(join(dir, 'regions'), bad, { recursive: true });
    const zone = join(bad, 'zone.yaml');
    writeFileSync(zone, readFileSync(zone, 'utf8').replace('type: MX, values: ["10 mx1.example.net."', 'type: MX, values: ["100000 mx1.example.net."'));
    const apply = arus(['apply', bad, '--db', db]);
    expect(apply.code).not.toBe(0);
    expect(apply.stderr).toContain(`${zone}: records[1].values[0]: preference "100000" must be a whole number from 0 to 65535`);
    expect(data(q([APEX, 'MX']), 'MX')).toEqual(['10 mx1.example.net.', '20 mx2.example.net.']);

    // The same file, fixed and with a record more, goes in and is answered.
    writeFileSync(zone, readFileSync(zone, 'utf8').replace('100000', '5') + '  - { name: added, type: A, value: 192.0.2.44 }\n');
    expect(arus(['apply', bad, '--db', db]).stdout).toMatch(/applied zone-settings/);
    await expect.poll(() => data(q([`added.${APEX}`, 'A']), 'A'), { timeout: 3000, interval: 50 }).toEqual(['192.0.2.44']);
    expect(data(q([APEX, 'MX']), 'MX')).toEqual(['5 mx1.example.net.', '20 mx2.example.net.']);
  });
});
