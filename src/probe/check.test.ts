import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Check } from '../config/schema.js';
import { checkKey, runCheck } from './check.js';

const open: Array<{ close(): unknown; closeAllConnections?(): void }> = [];

async function http(handler: RequestListener): Promise<{ server: Server; url: string; port: number }> {
  const server = createHttpServer(handler);
  open.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { server, url: `http://127.0.0.1:${port}`, port };
}

/** A port nothing listens on: bound, then released. */
async function deadPort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

afterEach(() => {
  for (const s of open.splice(0)) {
    s.closeAllConnections?.();
    s.close();
  }
});

const httpCheck = (url: string, extra: Partial<Extract<Check, { type: 'http' }>> = {}): Check => ({
  type: 'http',
  url,
  status: 200,
  timeoutMs: 1000,
  ...extra,
});

describe('runCheck: http', () => {
  it('succeeds on the wanted status and measures the round trip', async () => {
    const { url } = await http((_req, res) => setTimeout(() => res.end('ok'), 30));
    const out = await runCheck(httpCheck(`${url}/health`));
    expect(out.ok).toBe(true);
    if (out.ok) {
      expect(out.rttMs).toBeGreaterThanOrEqual(25);
      expect(out.rttMs).toBeLessThan(500);
    }
  });

  it('names the status it got and the one it wanted; redirects are not followed', async () => {
    const { url } = await http((req, res) => {
      if (req.url === '/moved') res.writeHead(302, { location: '/health' }).end();
      else res.writeHead(503).end();
    });
    expect(await runCheck(httpCheck(`${url}/health`))).toEqual({ ok: false, error: 'status 503 (want 200)' });
    expect(await runCheck(httpCheck(`${url}/moved`))).toEqual({ ok: false, error: 'status 302 (want 200)' });
    expect((await runCheck(httpCheck(`${url}/health`, { status: 503 }))).ok).toBe(true);
  });

  it('checks the body for bodyContains, across chunks', async () => {
    const { url } = await http((_req, res) => {
      res.write('{"data":[{"id":"llama-3');
      setTimeout(() => res.end('-8b"}]}'), 10);
    });
    expect((await runCheck(httpCheck(url, { bodyContains: 'llama-3-8b' }))).ok).toBe(true);
    expect(await runCheck(httpCheck(url, { bodyContains: 'llama-3-70b' }))).toEqual({ ok: false, error: 'body lacks "llama-3-70b"' });
  });

  it('reports a refused connection with the address', async () => {
    const port = await deadPort();
    expect(await runCheck(httpCheck(`http://127.0.0.1:${port}/health`))).toEqual({
      ok: false,
      error: `connect ECONNREFUSED 127.0.0.1:${port}`,
    });
  });

  it('times out a server that never answers, and one that stalls mid-body', async () => {
    const { url } = await http((req, res) => {
      if (req.url === '/stall') res.write('partial');
      // otherwise: never answer
    });
    const t0 = performance.now();
    expect(await runCheck(httpCheck(url, { timeoutMs: 100 }))).toEqual({ ok: false, error: 'timeout after 100 ms' });
    expect(performance.now() - t0).toBeLessThan(400);
    expect(await runCheck(httpCheck(`${url}/stall`, { timeoutMs: 100 }))).toEqual({ ok: false, error: 'timeout after 100 ms' });
  });

  it('reports a server that closes the connection without answering', async () => {
    const { url } = await http((req) => req.socket.destroy());
    expect(await runCheck(httpCheck(url))).toEqual({ ok: false, error: 'connection closed before a response (socket hang up)' });
  });

  it('uses a fresh connection for every check, asking the server to close it', async () => {
    const sockets = new Set<unknown>();
    const connectionHeaders: string[] = [];
    const { url } = await http((req, res) => {
      sockets.add(req.socket);
      connectionHeaders.push(String(req.headers.connection));
      res.end('ok');
    });
    for (let i = 0; i < 3; i++) expect((await runCheck(httpCheck(url))).ok).toBe(true);
    expect(sockets.size).toBe(3);
    expect(connectionHeaders).toEqual(['close', 'close', 'close']);
  });

  it('sees a server killed between two checks at once', async () => {
    const { server, url } = await http((_req, res) => res.end('ok'));
    expect((await runCheck(httpCheck(url))).ok).toBe(true);
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    const out = await runCheck(httpCheck(url));
    expect(out).toEqual({ ok: false, error: expect.stringMatching(/^connect ECONNREFUSED 127\.0\.0\.1:\d+$/) });
  });

  it('gives up when the agent stops', async () => {
    const { url } = await http(() => {});
    const stop = new AbortController();
    const pending = runCheck(httpCheck(url, { timeoutMs: 5000 }), stop.signal);
    setTimeout(() => stop.abort(), 20);
    expect(await pending).toEqual({ ok: false, error: 'probe stopped' });
  });
});

describe('runCheck: tcp', () => {
  it('succeeds when the port accepts, fails when it refuses', async () => {
    const server = createTcpServer((sock) => sock.end());
    open.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const out = await runCheck({ type: 'tcp', host: '127.0.0.1', port, timeoutMs: 1000 });
    expect(out.ok).toBe(true);
    if (out.ok) expect(out.rttMs).toBeGreaterThan(0);

    const dead = await deadPort();
    expect(await runCheck({ type: 'tcp', host: '127.0.0.1', port: dead, timeoutMs: 1000 })).toEqual({
      ok: false,
      error: `connect ECONNREFUSED 127.0.0.1:${dead}`,
    });
  });

  it('works over IPv6 loopback', async () => {
    const server = createTcpServer((sock) => sock.end());
    open.push(server);
    await new Promise<void>((r) => server.listen(0, '::1', r));
    const port = (server.address() as AddressInfo).port;
    expect((await runCheck({ type: 'tcp', host: '::1', port, timeoutMs: 1000 })).ok).toBe(true);
  });
});

describe('checkKey', () => {
  it('is equal for equal checks and differs when anything that matters differs', () => {
    const a = { type: 'http', url: 'http://127.0.0.1:8000/health', status: 200, timeoutMs: 1000 } as const;
    expect(checkKey(a)).toBe(checkKey({ ...a }));
    expect(checkKey(a)).not.toBe(checkKey({ ...a, bodyContains: 'x' }));
    expect(checkKey(a)).not.toBe(checkKey({ ...a, timeoutMs: 500 }));
    expect(checkKey(a)).not.toBe(checkKey({ ...a, status: 204 }));
    const t: Check = { type: 'tcp', host: '127.0.0.1', port: 8000, timeoutMs: 1000 };
    expect(checkKey(t)).toBe(checkKey({ ...t }));
    expect(checkKey(t)).not.toBe(checkKey({ ...t, port: 8001 }));
  });
});
