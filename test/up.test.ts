// The promise, black-box: `arus up` on a real socket, queried by dig
// and Node's resolver; configuration changed with `arus apply` while it runs.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arus, ROOT, startArus, tempDir, type Running } from './helpers/arus.js';
import { dig, hasDig } from './helpers/dig.js';
import { regionsWithChecks } from './helpers/regions.js';

const requireDig = process.env.CI ? true : hasDig;
const APEX = 'gslb.example.com';
const REGION_V4: Record<string, string[]> = {
  sg: ['127.0.1.11', '127.0.1.12'],
  jkt: ['127.0.1.21', '127.0.1.22'],
  bkk: ['127.0.1.31', '127.0.1.32'],
  mnl: ['127.0.1.41', '127.0.1.42'],
};

const addrs = (r: ReturnType<typeof dig>) => r.answers.filter((a) => a.type === 'A').map((a) => a.data).sort();

describe.skipIf(!requireDig)('arus up, queried with dig', () => {
  let server: Running;
  let dir: string;
  let db: string;
  const q = (args: string[]) => dig('127.0.0.1', server.dnsPort, args);

  beforeAll(async () => {
    dir = tempDir();
    db = join(dir, 'arus.db');
    // No health checks here: this file is about answers from configuration (probes: test/failover.test.ts).
    const regions = regionsWithChecks(dir, () => undefined);
    server = await startArus(['up', '--db', db, '--regions', regions, '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off']);
  });
  afterAll(async () => server?.stop());

  it.each([
    { who: 'Indonesia', subnet: '36.66.0.0/24', region: 'jkt' },
    { who: 'Singapore', subnet: '165.21.0.0/16', region: 'sg' },
    { who: 'Thailand', subnet: '171.96.0.0/16', region: 'bkk' },
    { who: 'the Philippines', subnet: '112.198.0.0/16', region: 'mnl' },
    { who: 'Malaysia (nearest by distance)', subnet: '175.136.0.0/16', region: 'sg' },
    { who: 'Vietnam (nearest by distance)', subnet: '14.160.0.0/16', region: 'bkk' },
  ])('a client in $who gets $region, with a non-zero ECS scope', ({ subnet, region }) => {
    const r = q([`api.${APEX}`, 'A', `+subnet=${subnet}`]);
    expect(r.status).toBe('NOERROR');
    expect(r.flags).toContain('aa');
    expect(r.flags).not.toContain('ra');
    expect(addrs(r)).toEqual(REGION_V4[region]);
    const [net, source, scope] = r.clientSubnet!.split('/');
    expect(`${net}/${source}`).toBe(subnet);
    expect(Number(scope)).toBeGreaterThan(0);
  });

  it('answers over TCP', () => {
    expect(addrs(q([`api.${APEX}`, 'A', '+tcp', '+subnet=36.66.0.0/24']))).toEqual(REGION_V4.jkt);
  });

  it('refuses names outside the zone and denies names that do not exist, with the SOA', () => {
    const refused = q(['example.org', 'A']);
    expect(refused.status).toBe('REFUSED');
    expect(refused.flags).not.toContain('aa');
    const nx = q([`nope.${APEX}`, 'A']);
    expect(nx.status).toBe('NXDOMAIN');
    expect(nx.flags).toContain('aa');
    expect(nx.authority.map((a) => [a.name, a.type])).toEqual([[`${APEX}.`, 'SOA']]);
  });

  it("answers Node's resolver (no ECS: located by the resolver's address, the default region for loopback)", async () => {
    const resolver = new Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${server.dnsPort}`]);
    expect((await resolver.resolve4(`api.${APEX}`)).sort()).toEqual(REGION_V4.sg);
    expect((await resolver.resolve4(`jkt.api.${APEX}`)).sort()).toEqual(REGION_V4.jkt);
    // The demo zones have IPv4 endpoints only: AAAA is NODATA (the name exists), not NXDOMAIN.
    await expect(resolver.resolve6(`jkt.api.${APEX}`)).rejects.toMatchObject({ code: 'ENODATA' });
    await expect(resolver.resolve4(`nope.${APEX}`)).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('moves Indonesian clients to sg within a second when both Jakarta zones are marked down and re-applied, and back', async () => {
    const file = join(dir, 'regions', 'jkt.yaml');
    const original = readFileSync(file, 'utf8');
    writeFileSync(file, original.replace(/ {2}- id: (jkt-[ab])\n/g, '  - id: $1\n    down: true\n'));
    const apply = arus(['apply', file, '--db', db, '--reason', 'test: jkt down']);
    expect(apply.stderr).toBe('');
    expect(apply.stdout).toMatch(/applied region:jkt/);
    await expect.poll(() => addrs(q([`api.${APEX}`, 'A', '+subnet=36.66.0.0/24'])), { timeout: 1000, interval: 50 }).toEqual(REGION_V4.sg);

    writeFileSync(file, original);
    expect(arus(['apply', join(dir, 'regions'), '--db', db]).stdout).toMatch(/applied region:jkt/);
    await expect.poll(() => addrs(q([`api.${APEX}`, 'A', '+subnet=36.66.0.0/24'])), { timeout: 1000, interval: 50 }).toEqual(REGION_V4.jkt);
  });

  it('drains a region from the command line, records it, and undrains it', async () => {
    const drain = arus(['drain', 'region:jkt', '--reason', 'kernel upgrade', '--db', db]);
    expect(drain.stdout).toMatch(/drained region:jkt/);
    await expect.poll(() => addrs(q([`api.${APEX}`, 'A', '+subnet=36.66.0.0/24'])), { timeout: 1000, interval: 50 }).toEqual(REGION_V4.sg);
    expect(arus(['events', '--db', db, '--kind', 'drain']).stdout).toMatch(/drain\s+region:jkt\s+none → drain\s+kernel upgrade \(by cli\)/);
    expect(arus(['drain', 'region:nowhere', '--reason', 'x', '--db', db]).stderr).toMatch(/no such subject "region:nowhere"/);
    arus(['undrain', 'region:jkt', '--db', db]);
    await expect.poll(() => addrs(q([`api.${APEX}`, 'A', '+subnet=36.66.0.0/24'])), { timeout: 1000, interval: 50 }).toEqual(REGION_V4.jkt);
  });

  it('rejects an invalid document with file, field and reason, and changes nothing', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, readFileSync(join(dir, 'regions', 'jkt.yaml'), 'utf8').replace('127.0.1.21', '203.0.113.300'));
    const r = arus(['apply', bad, '--db', db]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad\.yaml: zones\[0\]\.endpoints\[0\]\.address: must be an IPv4 or IPv6 address/);
    expect(addrs(q([`api.${APEX}`, 'A', '+subnet=36.66.0.0/24']))).toEqual(REGION_V4.jkt);
  });
});

describe('start-up with a bad configuration', () => {
  it('stops with the file, the field and the reason', () => {
    const dir = tempDir();
    cpSync(join(ROOT, 'regions'), join(dir, 'regions'), { recursive: true });
    const file = join(dir, 'regions', 'bkk.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('lat: 13.7563', 'lat: 213.7563'));
    const r = arus(['up', '--db', join(dir, 'a.db'), '--regions', join(dir, 'regions'), '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bkk\.yaml: location\.lat: .*90/);
  });

  it("exits at SIGTERM when its stdout's reader has gone (arus up | head)", async () => {
    const dir = tempDir();
    const server = await startArus(['up', '--db', join(dir, 'a.db'), '--regions', regionsWithChecks(dir, () => undefined), '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off']);
    const exited = new Promise<string>((resolve) => server.proc.once('exit', (code, signal) => resolve(`${code ?? signal}`)));
    server.proc.stdout!.destroy(); // the reader is gone: the next log line gets EPIPE
    server.proc.kill('SIGTERM'); // logs "shutting down"
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5000))]);
    if (code === 'hung') server.proc.kill('SIGKILL');
    // The bug was a hang (the write retried for ever); exiting, cleanly or by the signal, is the point.
    expect(code).not.toBe('hung');
    expect(['0', 'SIGTERM']).toContain(code);
  });

  it('prints the decision and its trace without the network', () => {
    const r = arus(['resolve', `api.${APEX}`, '--client', '192.0.2.1', '--ecs', '171.96.0.0/16', '--config', join(ROOT, 'regions')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/127\.0\.1\.3[12] 127\.0\.1\.3[12]\s+\(region bkk/);
    expect(r.stdout).toMatch(/rank geo .*bkk \(home of TH/);
  });
});
