import { describe, expect, it } from 'vitest';
import { createTokenStore } from '../../db/tokens.js';
import { decodeSnapshot } from '../../snapshot/document.js';
import { createSseReader, type SseEvent } from '../../snapshot/sse.js';
import { testApi } from '../testing.js';

function withDnsToken() {
  const api = testApi();
  const dns = createTokenStore(api.db).create({ role: 'dns', node: 'dns-sg-1' }).token;
  const get = (path: string, token: string) => api.app.request(path, { headers: { authorization: `Bearer ${token}` } });
  return { ...api, dns, get };
}

/** Reads a stream's events as they come; `next(kind)` waits for the next one of that kind. */
function events(res: Response) {
  const queue: SseEvent[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const feed = createSseReader((e) => queue.push(e));
  return {
    async next(kind: string): Promise<SseEvent> {
      for (;;) {
        const i = queue.findIndex((e) => e.event === kind);
        if (i >= 0) return queue.splice(0, i + 1)[i];
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        feed(decoder.decode(value, { stream: true }));
      }
    },
    close: () => reader.cancel(),
  };
}

describe('snapshot routes', () => {
  it('give a dns token the current snapshot, and nothing else', async () => {
    const api = withDnsToken();
    const res = await api.get('/v1/snapshots/current', api.dns);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const { snapshot } = decodeSnapshot(await res.text());
    expect(snapshot).toEqual(api.control.current().snapshot);
    for (const path of ['/v1/regions', '/v1/health', '/v1/events', '/v1/probes/targets']) expect((await api.get(path, api.dns)).status, path).toBe(403);
    expect((await api.call('GET', '/v1/snapshots/current', { token: 'probe' })).status).toBe(403);
    expect((await api.call('GET', '/v1/snapshots/current', { token: 'viewer' })).status).toBe(200);
  });

  it('stream the snapshot at once, then every new version as control publishes it', async () => {
    const api = withDnsToken();
    const stream = events(await api.get('/v1/snapshots/stream?node=dns-sg-1', api.dns));
    const hello = JSON.parse((await stream.next('hello')).data) as { keepaliveMs: number; version: number };
    expect(hello).toEqual({ keepaliveMs: 1000, version: api.control.current().snapshot.version });
    const first = await stream.next('snapshot');
    expect(first.id).toBe(String(hello.version));
    expect(decodeSnapshot(first.data).snapshot.version).toBe(hello.version);

    const put = await api.call('PATCH', '/v1/regions/jkt', { body: { name: 'Jakarta Raya' } });
    expect(put.status).toBe(200);
    api.control.tick();
    const next = decodeSnapshot((await stream.next('snapshot')).data).snapshot;
    expect(next.version).toBeGreaterThan(hello.version);
    expect(next.regionById.get('jkt')!.name).toBe('Jakarta Raya');
    expect(next).toEqual(api.control.current().snapshot);
    await stream.close();
  });

  it("record a node's gap when its own token says it reconnects after one; a viewer's word is not history", async () => {
    const api = withDnsToken();
    const gaps = () => api.store.listEvents({ kind: 'dns.reconnected', limit: 10 });
    const viewer = await api.call('GET', '/v1/snapshots/stream?node=x&gapMs=5000', { token: 'viewer' });
    expect(viewer.status).toBe(200);
    await viewer.body!.cancel();
    expect(gaps()).toEqual([]);

    const res = await api.get('/v1/snapshots/stream?node=dns-sg-1&version=3&gapMs=12345', api.dns);
    expect(res.status).toBe(200);
    await res.body!.cancel();
    const [gap] = gaps();
    expect(gap).toMatchObject({ subject: 'dns:dns-sg-1', oldState: 'disconnected', newState: 'connected', data: { node: 'dns-sg-1', gapMs: 12345, version: 3 } });
    expect(gap.reason).toMatch(/dns node dns-sg-1 reached control again after 12\.3 s without it, answering from its last snapshot \(version 3\)/);
  });

  it('refuse a bad query with the field named', async () => {
    const api = withDnsToken();
    const res = await api.get('/v1/snapshots/stream?gapMs=-1', api.dns);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ fields: [{ path: 'query.gapMs' }] });
  });
});
