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
