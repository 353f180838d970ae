// Every link to control over TLS, on real sockets, with certificates from
// `arus certs init`: a probe agent, a DNS node and a balancer (in front of
// `arus sim`) work against an HTTPS control, with bound tokens and with
// client certificates alone; a credential that names jkt-1 cannot report as
// bkk-2; control's certificate is rotated on disk without a restart; under
// mutual TLS a client without a certificate is refused at the handshake; and
// the links that must fail (plain http to the TLS port, the wrong CA, an
// expired certificate, another name) fail with their reason, retry with
// back-off, and never fall back to plain text.
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../src/sim/server.js';
import { freePort, launchArus, startArus, tempDir, until, type Launched, type Running } from './helpers/arus.js';
import { certsInit, createToken, loadAuthority, tlsFetch, writeIssued, type Certs, type TlsFetch } from './helpers/credentials.js';
import { digAsync, hasDig } from './helpers/dig.js';
import { regionsWithChecks, startZoneSims } from './helpers/regions.js';
import { startTap, type Tap } from './helpers/tcp-tap.js';

const requireDig = process.env.CI ? true : hasDig;
const ADMIN = 'tls-admin-token';
const JKT = ['127.0.1.21', '127.0.1.22'];
/** Client identities every lab CA here issues. */
const CLIENTS = ['probe/sg/probe-sg', 'probe/jkt/jkt-1', 'balancer/bkk', 'dns/dns-1', 'admin/tester'];

type Vote = { agent: string; ok: boolean; fresh: boolean };
type Health = { regions: { id: string; zones: { id: string; endpoints: { address: string; state: string; votes: Vote[] }[] }[] }[]; agents: { id: string; fresh: boolean }[] };
const endpoints = (h: Health) => h.regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints.map((e) => ({ endpoint: `${r.id}/${z.id}/${e.address}`, ...e }))));

const indonesia = async (dnsPort: number) =>
  (await digAsync('127.0.0.1', dnsPort, ['api.gslb.example.com', 'A', '+subnet=36.66.0.0/24'])).answers
    .filter((a) => a.type === 'A')
    .map((a) => a.data)
    .sort();

/** The regions with each zone's check on a test-owned sim, and Bangkok's balancer in front of an `arus sim` on `simPorts`. */
function labRegions(dir: string, sims: Map<string, SimServer>, simPorts: number[]): string {
  const regions = regionsWithChecks(dir, (zone) => sims.get(zone)!.port);
  const file = join(regions, 'bkk.yaml');
  writeFileSync(
    file,
    `${readFileSync(file, 'utf8')}balancer:
  listen: "127.0.0.1:0"
  strategy: round-robin
  reportEveryMs: 200
  instances:
${simPorts.map((p, i) => `    - { id: bkk-gpu-${i + 1}, url: "http://127.0.0.1:${p}", models: [llama-3-8b] }`).join('\n')}
`,
  );
  return regions;
}

/** The certificate a new TLS connection to 127.0.0.1:`port` is served, as its SHA-256 fingerprint. */
function servedFingerprint(port: number, o: ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ...o }, () => {
      const fp = s.getPeerX509Certificate()?.fingerprint256 ?? '';
      s.end();
      resolve(fp);
    });
    s.once('error', reject);
  });
}

const fingerprintOf = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;

function metric(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

const MODES = [
  { mode: 'TLS, and a token bound to each role', mutual: false },
  { mode: 'mutual TLS, client certificates only (no tokens)', mutual: true },
] as const;

describe.skipIf(!requireDig).each(MODES)('a probe agent, a DNS node and a balancer against an HTTPS control: $mode', ({ mutual }) => {
  const procs: Running[] = [];
  let sims: Map<string, SimServer>;
  let dir: string;
  let certs: Certs;
  let control: Running;
  let dns: Running;
  let admin: TlsFetch;
  /** Bound tokens (TLS mode); empty under mutual TLS, where the certificates are the credentials. */
  const tokens: Record<'probe' | 'dns' | 'balancer' | 'jkt1', string> = { probe: '', dns: '', balancer: '', jkt1: '' };
  const port = () => Number(new URL(control.api!).port);
  /** A role's credential flags: its client certificate under mutual TLS, else --ca and its token. */
  const credential = (identity: string, token: string) => (mutual ? certs.clientArgs(identity) : [...certs.clientArgs(), '--token', token]);
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await admin.fetch(`${control.api}${path}`, {
      method,
      headers: { ...(mutual ? {} : { authorization: `Bearer ${ADMIN}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  const health = async () => (await api('GET', '/v1/health')).body as Health;
  const dnsMetrics = async () => (await fetch(dns.logs.find((l) => l.msg === 'ready')!.metrics as string)).text();

  beforeAll(async () => {
    dir = tempDir('arus-tls-');
    certs = certsInit(join(dir, 'certs'), { clients: CLIENTS });
    admin = mutual ? tlsFetch(certs.ca, certs.client('admin/tester')) : tlsFetch(certs.ca);
    sims = await startZoneSims();
    const simPorts = [await freePort(), await freePort()];
    const regions = labRegions(dir, sims, simPorts);
    const db = join(dir, 'arus.db');
    if (!mutual) {
      tokens.probe = createToken(db, { role: 'probe', agent: 'probe-sg', region: 'sg' });
      tokens.dns = createToken(db, { role: 'dns', node: 'dns-1' });
      tokens.balancer = createToken(db, { role: 'balancer', region: 'bkk' });
      tokens.jkt1 = createToken(db, { role: 'probe', agent: 'jkt-1', region: 'jkt' });
    }
    control = await startArus(['control', '--db', db, '--regions', regions, '--api-listen', '127.0.0.1:0', ...certs.serverArgs({ mutual })], {
      env: mutual ? {} : { ARUS_ADMIN_TOKEN: ADMIN },
      timeoutMs: 30_000,
    });
    procs.push(control);
    expect(control.api).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(control.logs.find((l) => l.msg === 'ready')).toMatchObject({ tls: mutual ? 'mutual' : 'server' });
    procs.push(await startArus(['sim', '--listen', simPorts.map((p) => `127.0.0.1:${p}`).join(','), '--ttft-ms', '5'], { timeoutMs: 30_000 }));
    const started = await Promise.all([
      startArus(['probe', '--control', control.api!, ...credential('probe/sg/probe-sg', tokens.probe)], { timeoutMs: 30_000 }),
      startArus(['dns', '--control', control.api!, ...credential('dns/dns-1', tokens.dns), '--snapshot', join(dir, 'dns', 'snapshot.json'), '--dns-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'], { timeoutMs: 30_000 }),
      startArus(['balancer', '--control', control.api!, ...credential('balancer/bkk', tokens.balancer), '--id', 'bkk-lb-1'], { timeoutMs: 30_000 }),
    ]);
    procs.push(...started);
    dns = started[1];
  }, 90_000);

  afterAll(async () => {
    for (const p of procs.reverse()) await p.stop();
    await admin?.close();
    await Promise.all([...(sims?.values() ?? [])].map((s) => s.stop()));
  });

  it('each role works over it: the DNS node answers from the stream, the probe votes, the balancer reports its capacity', async () => {
    // The probe agent reports as the agent its credential names, and its votes are counted.
    const h = await until(health, (x) => x.agents.some((a) => a.id === 'probe-sg' && a.fresh) && endpoints(x).every((e) => e.state === 'up' && e.votes.some((v) => v.agent === 'probe-sg' && v.ok && v.fresh)), 15_000, 200);
    expect(h.agents.map((a) => a.id)).toEqual(['probe-sg']);
    // The DNS node follows control's snapshot stream, under its credential's name.
    expect(dns.logs.find((l) => l.msg === 'ready')).toMatchObject({ from: 'control', control: control.api });
    expect(await indonesia(dns.dnsPort)).toEqual(JKT);
    await until(dnsMetrics, (m) => metric(m, 'arus_control_connected') === 1);
    // The balancer in front of `arus sim` reports Bangkok's capacity.
    const reports = await until(async () => (await api('GET', '/v1/capacity')).body.reports as { balancer: string; region: string; ready: number }[], (r) => r.some((x) => x.balancer === 'bkk-lb-1' && x.ready === 2), 15_000, 200);
    expect(reports.find((x) => x.balancer === 'bkk-lb-1')).toMatchObject({ region: 'bkk', ready: 2 });
    // /metrics rides on the same listener.
    const metrics = await admin.fetch(`${control.api}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^arus_api_identity_refused_total\{role="probe",binding="agent"\} 0$/m);
  });

  it(`refuses a report that a ${mutual ? 'certificate' : 'token'} naming jkt-1 sends as bkk-2: 403, nothing reaches the tracker, audited, counted`, async () => {
    const as = mutual ? tlsFetch(certs.ca, certs.client('probe/jkt/jkt-1')) : tlsFetch(certs.ca);
    const auth: Record<string, string> = mutual ? {} : { authorization: `Bearer ${tokens.jkt1}` };
    try {
      // The credential works, and says whom it speaks for.
      const who = await as.fetch(`${control.api}/v1/whoami`, { headers: auth });
      expect(await who.json()).toMatchObject({ role: 'probe', agent: 'jkt-1', region: 'jkt', via: mutual ? 'certificate' : 'token' });
      const before = endpoints(await health()).map((e) => [e.endpoint, e.state]);
      const targets = ((await (await as.fetch(`${control.api}/v1/probes/targets`, { headers: auth })).json()) as { targets: { endpoint: string }[] }).targets;
      const jkt = targets.filter((t) => t.endpoint.startsWith('jkt/')).map((t) => t.endpoint);
      expect(jkt).toHaveLength(2);
      const res = await as.fetch(`${control.api}/v1/probes/report`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ agent: { id: 'bkk-2', region: 'bkk' }, targets: targets.length, results: jkt.map((endpoint) => ({ endpoint, ok: false, error: 'connect ECONNREFUSED', at: Date.now() })) }),
      });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: string }).error).toMatch(/speaks for agent jkt-1, not bkk-2/);

      const agents = ((await api('GET', '/v1/probes')).body as { agents: { id: string }[] }).agents.map((a) => a.id);
      expect(agents).not.toContain('bkk-2');
      expect(agents).not.toContain('jkt-1');
      const after = await health();
      expect(endpoints(after).map((e) => [e.endpoint, e.state])).toEqual(before);
      expect(endpoints(after).flatMap((e) => e.votes.map((v) => v.agent))).not.toContain('bkk-2');
      const audit = (await api('GET', '/v1/audit?subject=agent:bkk-2')).body as { entries: { actor: string; role: string; action: string; status: number }[] };
      expect(audit.entries).toEqual([expect.objectContaining({ role: 'probe', action: 'POST /v1/probes/report', status: 403 })]);
      const metrics = await (await admin.fetch(`${control.api}/metrics`)).text();
      expect(metric(metrics, 'arus_api_identity_refused_total{role="probe",binding="agent"}')).toBe(1);
    } finally {
      await as.close();
    }
  });

  it("moves health on the probe's results: a crashed sim's endpoint goes down, and DNS follows", async () => {
    await sims.get('jkt-a')!.setFault({ kind: 'crash' });
    try {
      const h = await until(health, (x) => endpoints(x).find((e) => e.address === '127.0.1.21')?.state === 'down', 15_000, 200);
      expect(endpoints(h).find((e) => e.address === '127.0.1.21')!.votes).toEqual([expect.objectContaining({ agent: 'probe-sg', ok: false })]);
      await until(() => indonesia(dns.dnsPort), (a) => a.join() === '127.0.1.22', 10_000, 100);
    } finally {
      await sims.get('jkt-a')!.setFault({ kind: 'none' });
    }
    await until(() => indonesia(dns.dnsPort), (a) => a.join() === JKT.join(), 15_000, 100);
  });

  it("picks up control's rotated certificate files without a restart, while the DNS node keeps following the stream", async () => {
    const ca = await loadAuthority(certs.dir);
    const trust = { ca: readFileSync(certs.ca), ...(mutual ? { cert: readFileSync(certs.client('admin/tester').cert), key: readFileSync(certs.client('admin/tester').key) } : {}) };
    const old = await servedFingerprint(port(), trust);
    expect(old).toBe(fingerprintOf(certs.server.cert));
    // As cert-manager or certbot renews: new files over the old paths, the certificate first, then its key.
    await writeIssued(ca, certs.server, { name: '127.0.0.1', hosts: ['127.0.0.1', 'localhost'], usage: 'server' });
    const renewed = fingerprintOf(certs.server.cert);
    expect(renewed).not.toBe(old);
    const t0 = Date.now();
    await until(() => servedFingerprint(port(), trust), (fp) => fp === renewed, 15_000, 100);
    console.log(`${mutual ? 'mutual TLS' : 'TLS'}: a new connection saw the rotated certificate ${Date.now() - t0} ms after the files were written`);
    expect(control.proc.exitCode).toBeNull();
    expect(control.logs.filter((l) => l.msg === 'ready')).toHaveLength(1);
    expect(control.logs.find((l) => l.msg === 'TLS certificate reloaded')).toMatchObject({ fingerprint: renewed });

    // The DNS node is still (or again) on the stream: the next configuration change reaches its answers.
    expect(await indonesia(dns.dnsPort)).toEqual(JKT);
    const original = (await api('GET', '/v1/regions/jkt')).body as { zones: { endpoints: { address: string; weight: number }[] }[] };
    const extra = '198.51.100.77';
    const changed = structuredClone(original);
    changed.zones[0].endpoints.push({ address: extra, weight: 100 });
    expect((await api('PUT', '/v1/regions/jkt', changed)).status).toBe(200);
    try {
      await until(() => indonesia(dns.dnsPort), (a) => a.includes(extra), 10_000, 100);
      await until(dnsMetrics, (m) => metric(m, 'arus_control_connected') === 1);
    } finally {
      expect((await api('PUT', '/v1/regions/jkt', original)).status).toBe(200);
    }
    await until(() => indonesia(dns.dnsPort), (a) => a.join() === JKT.join(), 10_000, 100);
  });

  it(mutual ? 'refuses a client without a certificate at the handshake: no HTTP response, and fetch and curl fail' : 'asks no client certificate: a client without one completes the handshake and is answered', async () => {
    const ca = readFileSync(certs.ca);
    if (!mutual) {
      const answer = await new Promise<string>((resolve, reject) => {
        let data = '';
        const s = tlsConnect({ host: '127.0.0.1', port: port(), ca }, () => s.write('GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n'));
        s.on('data', (d: Buffer) => (data += d.toString()));
        s.on('error', reject);
        s.on('close', () => resolve(data));
      });
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
      return;
    }
    // TLS 1.3: the client finishes its side, then control's alert (certificate required) closes the connection.
    // Whatever request the client managed to send gets no byte of an answer.
    const raw = await new Promise<{ secured: boolean; data: string; error?: string }>((resolve) => {
      let data = '';
      let secured = false;
      let error: string | undefined;
      const s = tlsConnect({ host: '127.0.0.1', port: port(), ca }, () => {
        secured = true;
        s.write('GET /v1/whoami HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
      });
      s.on('data', (d: Buffer) => (data += d.toString()));
      s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
      s.on('close', () => resolve({ secured, data, error }));
    });
    expect(raw.data).toBe('');
    expect(raw.error).toMatch(/CERTIFICATE_REQUIRED|ECONNRESET/);
    // TLS 1.2: the handshake itself fails.
    const tls12 = await new Promise<{ secured: boolean; error?: string }>((resolve) => {
      let secured = false;
      let error: string | undefined;
      const s = tlsConnect({ host: '127.0.0.1', port: port(), ca, maxVersion: 'TLSv1.2' }, () => (secured = true));
      s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
      s.on('close', () => resolve({ secured, error }));
    });
    expect(tls12).toMatchObject({ secured: false, error: expect.stringMatching(/HANDSHAKE_FAILURE|CERTIFICATE_REQUIRED|ECONNRESET/) });

    const anonymous = tlsFetch(certs.ca);
    try {
      await expect(anonymous.fetch(`${control.api}/metrics`)).rejects.toThrow();
    } finally {
      await anonymous.close();
    }
    const curl = (args: string[]) =>
      new Promise<{ code: number; out: string }>((resolve) =>
        execFile('curl', ['-sS', '--max-time', '5', '--cacert', certs.ca, ...args, `${control.api}/metrics`], (err, stdout, stderr) =>
          resolve({ code: err ? Number((err as { code?: unknown }).code ?? -1) : 0, out: `${stdout}${stderr}` }),
        ),
      );
    const without = await curl([]);
    expect(without.code, without.out).not.toBe(0);
    expect(without.out).not.toMatch(/arus_/);
    // The same request with a certificate the client CA signed is answered.
    const withCert = await curl(['--cert', certs.client('admin/tester').cert, '--key', certs.client('admin/tester').key]);
    expect(withCert.code, withCert.out).toBe(0);
    expect(withCert.out).toMatch(/^arus_api_identity_refused_total/m);
  });
});

/** What the three roles do with a link that must fail: start, never get ready, log why, and try again. */
type RoleRun = { role: 'probe' | 'dns' | 'balancer'; tap: Tap; proc: Launched };

describe('links to control that must fail: each says why, retries with back-off, and never falls back to plain text', () => {
  let dir: string;
  let certs: Certs;
  let other: Certs;
  const controls: Record<'good' | 'expired' | 'misnamed', Running | undefined> = { good: undefined, expired: undefined, misnamed: undefined };
  const tokens: Record<'probe' | 'dns' | 'balancer', string> = { probe: '', dns: '', balancer: '' };
  const runs: RoleRun[] = [];

  beforeAll(async () => {
    dir = tempDir('arus-tls-fail-');
    certs = certsInit(join(dir, 'certs'));
    // Another lab's CA: what a role configured with the wrong --ca trusts.
    other = certsInit(join(dir, 'other'));
    const ca = await loadAuthority(certs.dir);
    const day = 24 * 3600 * 1000;
    const expired = { cert: join(dir, 'expired.crt'), key: join(dir, 'expired.key') };
    const misnamed = { cert: join(dir, 'misnamed.crt'), key: join(dir, 'misnamed.key') };
    await writeIssued(ca, expired, { name: '127.0.0.1', hosts: ['127.0.0.1', 'localhost'], usage: 'server', notBefore: new Date(Date.now() - 30 * day), notAfter: new Date(Date.now() - day) });
    await writeIssued(ca, misnamed, { name: 'control.example.net', hosts: ['control.example.net'], usage: 'server' });
    const regions = regionsWithChecks(dir, () => undefined);
    const db = join(dir, 'good.db');
    tokens.probe = createToken(db, { role: 'probe', agent: 'probe-x', region: 'sg' });
    tokens.dns = createToken(db, { role: 'dns', node: 'dns-x' });
    tokens.balancer = createToken(db, { role: 'balancer', region: 'bkk' });
    const start = (name: string, pair: { cert: string; key: string }) =>
      startArus(['control', '--db', join(dir, `${name}.db`), '--regions', regions, '--api-listen', '127.0.0.1:0', '--tls-cert', pair.cert, '--tls-key', pair.key], { timeoutMs: 30_000 });
    [controls.good, controls.expired, controls.misnamed] = await Promise.all([start('good', certs.server), start('expired', expired), start('misnamed', misnamed)]);
    expect(controls.expired.logs.find((l) => l.msg === 'TLS certificate has expired: clients will refuse it')).toBeDefined();
  }, 60_000);

  afterAll(async () => {
    await Promise.all(runs.map((r) => r.proc.stop()));
    await Promise.all(runs.map((r) => r.tap.close()));
    await Promise.all(Object.values(controls).map((c) => (c ? c.stop() : Promise.resolve())));
  });

  /** The three roles, each through its own tap in front of `control`, with `url` scheme and `--ca`. */
  async function launchRoles(name: string, control: Running, scheme: 'http' | 'https', ca: string): Promise<RoleRun[]> {
    const target = Number(new URL(control.api!).port);
    const mine: RoleRun[] = [];
    for (const role of ['probe', 'dns', 'balancer'] as const) {
      const tap = await startTap(target);
      const url = `${scheme}://127.0.0.1:${tap.port}`;
      const extra = role === 'dns' ? ['--snapshot', join(dir, `${name}-snapshot.json`), '--dns-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'] : [];
      const proc = launchArus([role, '--control', url, '--token', tokens[role], '--ca', ca, ...extra]);
      mine.push({ role, tap, proc });
    }
    runs.push(...mine);
    return mine;
  }

  const CASES = [
    { name: 'plain http:// to the TLS port', control: 'good', scheme: 'http', ca: () => certs.ca, reason: /control closed the connection before answering \(.+\): does it serve https\? use an https:\/\/ URL/ },
    { name: 'a --ca that did not sign control\'s certificate', control: 'good', scheme: 'https', ca: () => other.ca, reason: /TLS: control's certificate is not signed by a CA this role trusts \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\): give the CA that signed it with --ca FILE/ },
    { name: 'an expired server certificate', control: 'expired', scheme: 'https', ca: () => certs.ca, reason: /TLS: control's certificate has expired \(CERT_HAS_EXPIRED\): renew it on control/ },
    { name: 'a server certificate for another name', control: 'misnamed', scheme: 'https', ca: () => certs.ca, reason: /TLS: control's certificate does not name 127\.0\.0\.1 \(ERR_TLS_CERT_ALTNAME_INVALID; it names DNS:[^)]+\): use a URL with a name the certificate has/ },
  ] as const;

  it.each(CASES)('$name', { timeout: 60_000 }, async ({ name, control, scheme, ca, reason }) => {
    const roles = await launchRoles(name.replace(/\W+/g, '-'), controls[control]!, scheme, ca());
    /** The line each role logs about the failure: the message and the field the reason is in. */
    const failure = (r: RoleRun) => r.proc.logs.find((l) => typeof l.err === 'string' && reason.test(l.err));
    await until(
      () => roles.map((r) => ({ role: r.role, connections: r.tap.connections.length, logged: failure(r) !== undefined, exited: r.proc.proc.exitCode })),
      (s) => s.every((x) => (x.connections >= 5 && x.logged) || x.exited !== null),
      30_000,
      200,
    );
    for (const r of roles) {
      const context = `${r.role}: ${JSON.stringify(r.proc.logs.slice(-3))}\n${r.proc.stderr()}`;
      // Still running and trying again, never ready on a link it refuses.
      expect(r.proc.proc.exitCode, context).toBeNull();
      expect(r.proc.logs.some((l) => l.msg === 'ready'), context).toBe(false);
      const line = failure(r)!;
      expect(line.msg, context).toMatch(r.role === 'dns' ? /^cannot reach control, and no snapshot to answer from yet$/ : /^cannot reach control yet; retrying with back-off$/);
      // The probe and the balancer name the URL that failed; the DNS node says why.
      if (r.role !== 'dns') expect(line.err, context).toContain(`${scheme}://127.0.0.1:${r.tap.port}/v1/whoami: `);
      // Back-off, not a busy loop: the waits start at 100–200 ms and double (each jittered to 50–100 %).
      const at = r.tap.connections.map((c) => c.at);
      expect(at[3] - at[0], `${r.role}: ${at.join(', ')}`).toBeGreaterThanOrEqual(700);
      expect(at[4] - at[3], `${r.role}: ${at.join(', ')}`).toBeGreaterThanOrEqual(400);
      // Every connection opened with what its URL says: TLS (0x16, a handshake record) for https://, never plain text.
      const opened = new Set(r.tap.connections.filter((c) => c.firstByte !== undefined).map((c) => c.firstByte));
      expect([...opened], r.role).toEqual([scheme === 'https' ? 0x16 : 'G'.charCodeAt(0)]);
    }
    console.log(`${name}: ${roles.map((r) => `${r.role} ${r.tap.connections.length} attempts`).join(', ')}; e.g. ${String(failure(roles[0])!.err)}`);
    await Promise.all(roles.map((r) => r.proc.stop()));
  });

  it('the fixtures are what they claim: signed by the lab CA, one expired, one for another name only', () => {
    const ca = new X509Certificate(readFileSync(certs.ca));
    const expired = new X509Certificate(readFileSync(join(dir, 'expired.crt')));
    const misnamed = new X509Certificate(readFileSync(join(dir, 'misnamed.crt')));
    for (const c of [expired, misnamed]) expect(c.checkIssued(ca)).toBe(true);
    expect(Date.parse(expired.validTo)).toBeLessThan(Date.now());
    expect(expired.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(misnamed.checkIP('127.0.0.1')).toBeUndefined();
    expect(misnamed.checkHost('control.example.net')).toBe('control.example.net');
  });
});
