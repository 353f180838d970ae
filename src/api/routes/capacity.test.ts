import { describe, expect, it } from 'vitest';
import { testApi } from '../testing.js';

describe("GET /v1/balancers/{region}: a balancer's configuration, cheap to poll", () => {
  it('carries an ETag of the section; If-None-Match with it answers 304 with no body until the section changes', async () => {
    const api = testApi();
    const first = await api.call('GET', '/v1/balancers/jkt', { token: 'balancer' });
    expect(first.status).toBe(200);
    const tag = first.headers.get('etag')!;
    expect(tag).toMatch(/^"b-[\w-]+"$/);
    const section = await first.json();

    const again = await api.call('GET', '/v1/balancers/jkt', { token: 'balancer', headers: { 'if-none-match': tag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    expect(again.headers.get('etag')).toBe(tag);
    // A list naming it, or its weak form, matches too; another tag does not.
    expect((await api.call('GET', '/v1/balancers/jkt', { token: 'balancer', headers: { 'if-none-match': `"other", W/${tag}` } })).status).toBe(304);
    expect((await api.call('GET', '/v1/balancers/jkt', { token: 'balancer', headers: { 'if-none-match': '"other"' } })).status).toBe(200);

    // Another region's change leaves the tag alone; a change of this section moves it.
    expect((await api.call('PATCH', '/v1/regions/sg', { body: { name: 'Singapura' } })).status).toBe(200);
    expect((await api.call('GET', '/v1/balancers/jkt', { token: 'balancer', headers: { 'if-none-match': tag } })).status).toBe(304);
    const patched = await api.call('PATCH', '/v1/regions/jkt', { body: { balancer: { strategy: 'round-robin' } } });
    expect(patched.status, await patched.clone().text()).toBe(200);
    const changed = await api.call('GET', '/v1/balancers/jkt', { token: 'balancer', headers: { 'if-none-match': tag } });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(tag);
    expect(await changed.json()).toEqual({ ...section, strategy: 'round-robin' });
  });

  it('still refuses another region, and says which region has no section', async () => {
    const api = testApi();
    expect((await api.call('GET', '/v1/balancers/sg', { token: 'balancer', headers: { 'if-none-match': '"x"' } })).status).toBe(403);
    const section = api.store.getConfig()!.regions.find((r) => r.id === 'jkt')!.balancer;
    expect(section).toBeDefined();
    const res = await api.call('GET', '/v1/balancers/nowhere', { token: 'admin' });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'no region "nowhere"' });
  });
});

describe('POST /v1/capacity with scaling', () => {
  const body = (extra: Record<string, unknown>) => ({ region: 'jkt', balancer: 'lb-jkt', instances: 2, ready: 1, outstanding: 8, freeConcurrency: 0, queueDepth: 5, ...extra });
  const pools = [{ model: 'llama-3-8b', desired: 3, current: 2, warming: 1, draining: 0, ready: 1, scaling: 'local' }];
  const step = { kind: 'scale.up', subject: 'pool:jkt/llama-3-8b', oldState: '1 instances', newState: '3 instances', reason: 'demand burst', at: Date.now() - 1000 };

  it("puts the balancer's scaling steps in the history and shows every pool's signals in GET /v1/capacity", async () => {
    const api = testApi();
    const res = await api.call('POST', '/v1/capacity', { token: 'balancer', body: body({ pools, events: [step] }) });
    expect(res.status, await res.clone().text()).toBe(200);
    const events = (await (await api.call('GET', '/v1/events?kind=scale.up')).json()) as { events: { kind: string; subject: string; reason: string; region: string; time: number }[] };
    expect(events.events).toMatchObject([{ kind: 'scale.up', subject: 'pool:jkt/llama-3-8b', reason: 'demand burst', region: 'jkt' }]);
    expect(events.events[0].time).toBe(step.at);
    const view = (await (await api.call('GET', '/v1/capacity')).json()) as { pools: unknown[]; reports: { events?: unknown }[] };
    expect(view.pools).toEqual([{ region: 'jkt', balancer: 'lb-jkt', ...pools[0] }]);
    // The steps went to the history; the report kept is the figures.
    expect(view.reports[0].events).toBeUndefined();
  });

  it('refuses an unknown kind of step or bad figures with 400, and records nothing', async () => {
    const api = testApi();
    expect((await api.call('POST', '/v1/capacity', { token: 'balancer', body: body({ events: [{ ...step, kind: 'scale.sideways' }] }) })).status).toBe(400);
    expect((await api.call('POST', '/v1/capacity', { token: 'balancer', body: body({ pools: [{ ...pools[0], desired: -1 }] }) })).status).toBe(400);
    expect(api.control.capacity().reports).toEqual([]);
  });
});
