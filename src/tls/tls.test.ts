// TLS on real sockets: an HTTPS listener with certificates from certs.ts, and
// the control client's verdicts on it (trusted, wrong CA, expired, wrong name,
// plain text, mutual TLS), and certificate files rotated under a running server.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenHttp, type HttpListener } from '../http-listener.js';
import { createLogger } from '../log.js';
import { createAuthority, issue, issueClient, type Authority } from './certs.js';
import { ControlLinkError, createControlHttp } from './client.js';
import { peerIdentity } from './identity.js';
import { createServerCredentials, TlsFileError, type ServerCredentials } from './server.js';

const log = createLogger({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'arus-tls-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const listeners: HttpListener[] = [];
const creds: ServerCredentials[] = [];
let ca: Authority;
let otherCa: Authority;

/** An HTTPS listener on 127.0.0.1 answering `who` with the client certificate's identity. */
async function serve(pem: { cert: string; key: string }, o: { clientCa?: string; pollMs?: number; prefix?: string } = {}) {
  const prefix = o.prefix ?? `s${creds.length}`;
  const c = createServerCredentials({ cert: file(`${prefix}.crt`, pem.cert), key: file(`${prefix}.key`, pem.key), clientCa: o.clientCa }, log, { pollMs: o.pollMs ?? 50 });
  creds.push(c);
  const app = new Hono();
  app.get('/who', (ctx) => ctx.json(peerIdentity((ctx.env as { incoming: { socket: unknown } }).incoming.socket) ?? null));
  const l = await listenHttp(app.fetch, { address: '127.0.0.1', port: 0 }, { what: 'test', tls: c });
  listeners.push(l);
  return { url: l.url, port: Number(new URL(l.url).port), creds: c, prefix };
}

const failure = async (p: Promise<unknown>) => {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ControlLinkError);
  return (err as ControlLinkError).message;
};

/** The certificate a fresh TLS connection is served. */
const servedFingerprint = (port: number) =>
  new Promise<string>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.once('error', reject);
  });

beforeAll(async () => {
  ca = await createAuthority();
  otherCa = await createAuthority({ name: 'someone else' });
});
afterAll(async () => {
  await Promise.all(listeners.map((l) => l.stop()));
  for (const c of creds) c.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a role talking to an HTTPS control', () => {
  it('trusts a certificate its --ca signed, for the name in the URL', async () => {
    const s = await serve(await issue(ca, { name: 'control', hosts: ['127.0.0.1', 'localhost'], usage: 'server' }));
    const http = createControlHttp({ ca: file('ca.crt', ca.cert) }, log);
    expect((await http.fetch(`${s.url}/who`)).status).toBe(200);
    expect((await http.fetch(`https://localhost:${s.port}/who`)).status).toBe(200);
    await http.close();
  });

  it('refuses one signed by another CA, the system CAs included, naming --ca', async () => {
    const s = await serve(await issue(otherCa, { name: 'control', hosts: ['127.0.0.1'], usage: 'server' }));
    const mine = createControlHttp({ ca: file('ca.crt', ca.cert) }, log);
    expect(await failure(mine.fetch(`${s.url}/who`))).toMatch(new RegExp(`^${s.url}/who: TLS: control's certificate is not signed by a CA this role trusts \\(\\w+\\): give the CA that signed it with --ca FILE$`));
    const system = createControlHttp({}, log);
    expect(await failure(system.fetch(`${s.url}/who`))).toMatch(/not signed by a CA this role trusts/);
    await Promise.all([mine.close(), system.close()]);
  });

  it('refuses an expired certificate', async () => {
    const day = 24 * 3600 * 1000;
    const s = await serve(await issue(ca, { name: 'control', hosts: ['127.0.0.1'], usage: 'server', notBefore: new Date(Date.now() - 3 * day), notAfter: new Date(Date.now() - day) }));
    const http = createControlHttp({ ca: file('ca.crt', ca.cert) }, log);
    expect(await failure(http.fetch(`${s.url}/who`))).toMatch(/control's certificate has expired \(CERT_HAS_EXPIRED\)/);
    await http.close();
  });

  it('refuses a certificate for another name', async () => {
    const s = await serve(await issue(ca, { name: 'control', hosts: ['control.example.com'], usage: 'server' }));
    const http = createControlHttp({ ca: file('ca.crt', ca.cert) }, log);
    expect(await failure(http.fetch(`${s.url}/who`))).toMatch(/control's certificate does not name 127\.0\.0\.1 \(ERR_TLS_CERT_ALTNAME_INVALID; it names DNS:control\.example\.com\)/);
    await http.close();
  });

  it('says so when plain HTTP meets the TLS port, and when TLS meets a plain port', async () => {
    const s = await serve(await issue(ca, { name: 'control', hosts: ['127.0.0.1'], usage: 'server' }));
    const http = createControlHttp({ ca: file('ca.crt', ca.cert) }, log);
    expect(await failure(http.fetch(`http://127.0.0.1:${s.port}/who`))).toMatch(/does it serve https\? use an https:\/\/ URL/);
    const plain = await listenHttp(new Hono().fetch, { address: '127.0.0.1', port: 0 }, { what: 'test' });
    listeners.push(plain);
    expect(await failure(http.fetch(`${plain.url.replace('http:', 'https:')}/who`))).toMatch(/control does not speak TLS on this port/);
    await http.close();
  });

  it('with mutual TLS: no client certificate is refused at the handshake; one the client CA signed names its identity', async () => {
    const s = await serve(await issue(ca, { name: 'control', hosts: ['127.0.0.1'], usage: 'server' }), { clientCa: file('client-ca.crt', ca.cert) });
    const anonymous = createControlHttp({ ca: file('ca.crt', ca.cert) }, log);
    expect(await failure(anonymous.fetch(`${s.url}/who`))).toMatch(/(control refused this role's client certificate or its absence|it may require a client certificate).*--client-cert FILE --client-key FILE/);
    const stranger = await issueClient(otherCa, 'probe/jkt/jkt-1');
    const forged = createControlHttp({ ca: file('ca.crt', ca.cert), cert: file('f.crt', stranger.cert), key: file('f.key', stranger.key) }, log);
    expect(await failure(forged.fetch(`${s.url}/who`))).toMatch(/control refused this role's client certificate|may not trust this role's client certificate/);
    const probe = await issueClient(ca, 'probe/jkt/jkt-1');
    const agent = createControlHttp({ ca: file('ca.crt', ca.cert), cert: file('p.crt', probe.cert), key: file('p.key', probe.key) }, log);
    const res = await agent.fetch(`${s.url}/who`);
    expect(await res.json()).toEqual({ principal: { role: 'probe', name: 'jkt-1', agent: 'jkt-1', region: 'jkt', via: 'certificate' } });
    await Promise.all([anonymous.close(), forged.close(), agent.close()]);
  });
});

describe('certificate files rotated under a running server', () => {
  it('serves the new pair to new connections without a restart, and keeps the old one while the files do not match yet', async () => {
    const first = await issue(ca, { name: 'control', hosts: ['127.0.0.1'], usage: 'server' });
    const s = await serve(first, { prefix: 'rotated' });
    const before = await servedFingerprint(s.port);
    expect(before).toBe(s.creds.current().fingerprint);
    const next = await issue(ca, { name: 'control', hosts: ['127.0.0.1'], usage: 'server' });
    // The certificate first, its key a moment later (as a non-atomic writer does): the old pair stays.
    file('rotated.crt', next.cert);
    await new Promise((r) => setTimeout(r, 300));
    expect(await servedFingerprint(s.port)).toBe(before);
    expect(s.creds.current().reloads).toBe(0);
    file('rotated.key', next.key);
    const deadline = Date.now() + 5000;
    let now = before;
    while (now === before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      now = await servedFingerprint(s.port);
    }
    expect(now).not.toBe(before);
    expect(now).toBe(s.creds.current().fingerprint);
    expect(s.creds.current().reloads).toBe(1);
  });

  it('will not start on a key that is not the certificate\'s, naming both files', async () => {
    const a = await issue(ca, { name: 'a', hosts: ['127.0.0.1'], usage: 'server' });
    const b = await issue(ca, { name: 'b', hosts: ['127.0.0.1'], usage: 'server' });
    expect(() => createServerCredentials({ cert: file('a.crt', a.cert), key: file('b.key', b.key) }, log)).toThrow(TlsFileError);
    expect(() => createServerCredentials({ cert: file('a.crt', a.cert), key: file('b.key', b.key) }, log)).toThrow(/--tls-key .*b\.key is not the key of the certificate in --tls-cert .*a\.crt/);
    expect(() => createServerCredentials({ cert: join(dir, 'none.crt'), key: file('b.key', b.key) }, log)).toThrow(/--tls-cert .*none\.crt: no such file/);
  });
});
