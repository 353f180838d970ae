import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Check } from '../config/schema.js';
import { checkKey, runCheck, type CheckOutcome } from './check.js';

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

/** Waits for I/O while timers are fake: polls on setImmediate (real), with a real deadline. */
async function realTime(ok: () => boolean, ms = 5000): Promise<void> {
  for (const end = performance.now() + ms; !ok(); await new Promise((r) => setImmediate(r))) {
    if (performance.now() > end) throw new Error('condition not met');
  }
}

afterEach(() => {
  vi.useRealTimers();
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
    const t0 = performance.now();
    const out = await runCheck(httpCheck(`${url}/health`));
    const callMs = performance.now() - t0;
    expect(out.ok).toBe(true);
    if (out.ok) {
      expect(out.rttMs).toBeGreaterThanOrEqual(25);
      // Measured within the call, in ms: never more than the call took, however long that was.
      expect(out.rttMs).toBeLessThanOrEqual(callMs);
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
    expect(await runCheck(httpCheck(url, { timeoutMs: 100 }))).toEqual({ ok: false, error: 'timeout after 100 ms' });
    expect(await runCheck(httpCheck(`${url}/stall`, { timeoutMs: 100 }))).toEqual({ ok: false, error: 'timeout after 100 ms' });
  });

  it('gives up at its timeout, not later: the deadline timer alone ends it', async () => {
    let asked = 0;
    const { url } = await http(() => void asked++); // never answers
    // The check's timer on a fake clock; the request is real. Time moves only when the test moves it.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let outcome: CheckOutcome | undefined;
    void runCheck(httpCheck(url, { timeoutMs: 100 })).then((o) => (outcome = o));
    await realTime(() => asked === 1); // the request is at the server
    await vi.advanceTimersByTimeAsync(99);
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r)); // whatever 99 ms set off has run its course
    expect(outcome).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await realTime(() => outcome !== undefined);
    expect(outcome).toEqual({ ok: false, error: 'timeout after 100 ms' });
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
