import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import type { Proxy, ProxyStats } from './proxy.js';
import { createBalancerServer } from './server.js';

const stats: ProxyStats = { requests: 7, retries: 1, retriesDenied: 0, overloaded: 0, queueDepth: 0, ejections: 0, instances: {} };

// A proxy that starts a stream and never ends it.
const streaming: Proxy = {
  handle(_req, res) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: 1\n\n');
    return Promise.resolve();
  },
  wake() {},
  queued: () => 0,
  configure() {},
  stats: () => stats,
  close: async () => {},
};

const refused = (port: number) =>
  new Promise<string>((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve('connected')));
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });

describe('balancer server', () => {
  it('listens on 127.0.0.1, exposes the proxy stats, and stop() cuts open streams and frees the port', async () => {
    const server = createBalancerServer({ proxy: streaming, log: silentLogger() });
    const { port } = await server.start();
    expect(server.port).toBe(port);
    expect(server.stats()).toEqual(stats);
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`);
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('data: 1\n\n');
    await server.stop();
    await expect(reader.read()).rejects.toThrow(/terminated/);
    expect(server.port).toBeUndefined();
    expect(await refused(port)).toBe('ECONNREFUSED');
  });

  it('answers GET /healthz itself, apart from the proxy, with what it is given', async () => {
    let connected = true;
    const server = createBalancerServer({
      proxy: streaming,
      log: silentLogger(),
      healthz: () => ({ ok: true, region: 'jkt', control: { connected, url: 'https://c1:8443' }, instances: { ready: 1, total: 2 } }),
    });
    const { port } = await server.start();
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, region: 'jkt', control: { connected: true, url: 'https://c1:8443' }, instances: { ready: 1, total: 2 } });
    connected = false;
    expect(((await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { control: { connected: boolean } }).control.connected).toBe(false);
    await server.stop();
  });
});
