// A certificate through DNS-01, end to end: Debian's pebble (Let's Encrypt's
// ACME test server), told to look up challenges at Arus's DNS listener on
// loopback, issues a wildcard certificate for *.gslb.example.com to Debian's
// certbot, whose rfc2136 plugin finds the zone (a TSIG-signed SOA query to
// the update listener), places its TXT records and removes them through
// Arus's RFC 2136 listener.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certsInit } from './helpers/credentials.js';
import { arus, freePort, startArus, tempDir, until, type Running } from './helpers/arus.js';
import { dig, hasDig } from './helpers/dig.js';
import { regionsWithChecks } from './helpers/regions.js';

const has = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' }).status === 0;
const hasTools = hasDig && existsSync('/usr/bin/pebble') && has('certbot', ['--version']) && existsSync('/usr/lib/python3/dist-packages/certbot_dns_rfc2136');
const APEX = 'gslb.example.com';
const ADMIN = 'acme-admin-token';
const KEK = 'acme-test-key-encryption-key';

describe.skipIf(!hasTools && process.env.CI !== 'true')('a wildcard certificate through DNS-01: pebble, certbot-dns-rfc2136 and Arus on loopback', () => {
  let up: Running;
  let pebble: ChildProcess;
  let pebbleLog = '';
  let dir: string;
  let acmePort: number;
  let mgmtPort: number;
  let ca: string;
  let updatePort: number;

  beforeAll(async () => {
    dir = tempDir();
    const db = join(dir, 'arus.db');
    const created = arus(['tsig', 'create', '--name', 'certbot', '--allow', 'TXT:_acme-challenge.*', '--db', db], { env: { ARUS_TSIG_KEY: KEK } });
    expect(created.code, created.stderr).toBe(0);
    const secret = /-y hmac-sha256:certbot:(\S+)/.exec(created.stdout)![1];
    updatePort = await freePort();
    up = await startArus(
      ['up', '--db', db, '--regions', regionsWithChecks(dir, () => undefined), '--workers', '1', '--dns-listen', '127.0.0.1:0', '--api-listen', '127.0.0.1:0', '--sim', 'off', '--update-listen', `127.0.0.1:${updatePort}`],
      { env: { ARUS_ADMIN_TOKEN: ADMIN, ARUS_TSIG_KEY: KEK } },
    );
    // certbot's credentials file, as the README gives it (mode 0600: certbot warns otherwise).
    writeFileSync(
      join(dir, 'rfc2136.ini'),
      ['dns_rfc2136_server = 127.0.0.1', `dns_rfc2136_port = ${updatePort}`, 'dns_rfc2136_name = certbot', `dns_rfc2136_secret = ${secret}`, 'dns_rfc2136_algorithm = HMAC-SHA256', ''].join('\n'),
      { mode: 0o600 },
    );
    // Pebble's own HTTPS listener needs a certificate certbot trusts: one from a test CA.
    const certs = certsInit(join(dir, 'certs'));
    ca = certs.ca;
    [acmePort, mgmtPort] = [await freePort(), await freePort()];
    const config = { pebble: { listenAddress: `127.0.0.1:${acmePort}`, managementListenAddress: `127.0.0.1:${mgmtPort}`, certificate: certs.server.cert, privateKey: certs.server.key, httpPort: 5002, tlsPort: 5001, ocspResponderURL: '', externalAccountBindingRequired: false } };
    writeFileSync(join(dir, 'pebble.json'), JSON.stringify(config));
    pebble = spawn('pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${up.dnsPort}`, '-strict'], {
      env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (b: Buffer) => (pebbleLog += b.toString());
    pebble.stdout!.on('data', keep);
    pebble.stderr!.on('data', keep);
    await until(() => pebbleLog, (l) => /listening on|ACME directory available/i.test(l), 15_000, 50);
  }, 60_000);

  afterAll(async () => {
    pebble?.kill();
    await up?.stop();
  });

  it('issues the certificate: TXT records placed and removed through RFC 2136, validated by pebble against Arus DNS', async () => {
    const records = async () => (await (await fetch(`${up.api}/v1/records`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { records: unknown[] };
    const before = await records();
    const run = await new Promise<{ code: number; out: string }>((resolve) =>
      execFile(
        'certbot',
        [
          'certonly', '--non-interactive', '--agree-tos', '-m', 'ops@example.com', '--no-eff-email',
          '--server', `https://127.0.0.1:${acmePort}/dir`,
          '--config-dir', join(dir, 'le'), '--work-dir', join(dir, 'le-work'), '--logs-dir', join(dir, 'le-logs'),
          '--authenticator', 'dns-rfc2136', '--dns-rfc2136-credentials', join(dir, 'rfc2136.ini'), '--dns-rfc2136-propagation-seconds', '1',
          '--cert-name', 'gslb', '-d', `*.${APEX}`, '-d', APEX,
        ],
        { encoding: 'utf8', timeout: 120_000, env: { ...process.env, REQUESTS_CA_BUNDLE: ca } },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}\n--- pebble ---\n${pebbleLog}` }),
      ),
    );
    expect(run.code, run.out).toBe(0);

    // The certificate names the wildcard and the apex, and chains to pebble's root of this run.
    const live = join(dir, 'le', 'live', 'gslb');
    const text = spawnSync('openssl', ['x509', '-in', join(live, 'cert.pem'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' }).stdout;
    expect(text).toContain(`DNS:*.${APEX}`);
    expect(text).toContain(`DNS:${APEX}`);
    const agent = new Agent({ connect: { ca: readFileSync(ca) } });
    const root = await (await undiciFetch(`https://127.0.0.1:${mgmtPort}/roots/0`, { dispatcher: agent })).text();
    writeFileSync(join(dir, 'root.pem'), root);
    const verify = spawnSync('openssl', ['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(live, 'chain.pem'), join(live, 'cert.pem')], { encoding: 'utf8' });
    expect(verify.stdout + verify.stderr).toContain(': OK');

    // Pebble looked the challenges up at Arus's DNS listener, and both authorizations became valid by them.
    expect(pebbleLog).toContain(`Using custom DNS resolver for ACME challenges: 127.0.0.1:${up.dnsPort}`);
    expect(pebbleLog.match(/authz \S+ set VALID by completed challenge/g)).toHaveLength(2);

    // certbot's two TXT records went in and came out again through Arus's RFC 2136 listener, audited under the key.
    const audit = (await (await fetch(`${up.api}/v1/audit?actor=certbot`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { entries: { subject: string; after: unknown }[] };
    expect(audit.entries.length).toBeGreaterThanOrEqual(4);
    expect(audit.entries.every((e) => e.subject === `records:_acme-challenge.${APEX} TXT`)).toBe(true);
    await until(() => dig('127.0.0.1', up.dnsPort, ['+norec', `_acme-challenge.${APEX}`, 'TXT']).answers.length, (n) => n === 0, 3000, 50);
    expect(await records()).toEqual(before);
  }, 150_000);
});
