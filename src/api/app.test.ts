import { describe, expect, it } from 'vitest';
import { steer } from '../steer/steer.js';
import { PROBE_AGENT, testApi } from './testing.js';

const jkt = {
  id: 'jkt',
  name: 'Jakarta',
  location: { lat: -6.2088, lon: 106.8456 },
  countries: ['ID'],
  zones: [
    { id: 'jkt-a', endpoints: [{ address: '198.51.100.21' }] },
    { id: 'jkt-b', endpoints: [{ address: '198.51.100.22', weight: 50 }] },
  ],
};

const indonesia = (api: ReturnType<typeof testApi>) =>
  steer(
    { service: 'api', family: 4, client: { ip: '36.66.0.0', source: 'ecs', country: 'ID', location: { lat: -5, lon: 120 }, scope: 11, via: 'test' } },
    api.control.current().snapshot,
    () => 0.5,
  );

describe('regions', () => {
  it('lists and reads regions, with an ETag', async () => {
    const api = testApi();
    const list = await api.call('GET', '/v1/regions', { token: 'viewer' });
    expect(list.status).toBe(200);
    expect(((await list.json()) as { regions: { id: string }[] }).regions.map((r) => r.id).sort()).toEqual(['bkk', 'jkt', 'mnl', 'sg']);
    const one = await api.call('GET', '/v1/regions/sg', { token: 'viewer' });
    expect(one.status).toBe(200);
    expect(one.headers.get('etag')).toMatch(/^"[\w-]+"$/);
    expect(await one.json()).toMatchObject({ id: 'sg', name: 'Singapore' });
    expect((await api.call('GET', '/v1/regions/nowhere')).status).toBe(404);
  });

  it('PUT replaces a region, idempotently, and the next snapshot answers with it', async () => {
    const api = testApi();
    const first = await api.call('PUT', '/v1/regions/jkt', { body: jkt });
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ changed: ['region:jkt'] });
    expect(indonesia(api).answers.map((a) => a.address).sort()).toEqual(['198.51.100.21', '198.51.100.22']);
    const again = await api.call('PUT', '/v1/regions/jkt', { body: jkt });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ changed: [] });
    const created = await api.call('PUT', '/v1/regions/kul', { body: { ...jkt, id: 'kul', name: 'Kuala Lumpur', location: { lat: 3.139, lon: 101.6869 }, countries: ['MY'] } });
    expect(created.status).toBe(201);
    expect(api.store.getConfig()!.regions.map((r) => r.id)).toContain('kul');
    const audit = api.audit.list({});
    expect(audit.entries[0]).toMatchObject({ actor: 'test-admin', action: 'PUT /v1/regions/kul', subject: 'region:kul', status: 201 });
  });

  it.each([
    { name: 'a bad address', body: { ...jkt, zones: [{ id: 'jkt-a', endpoints: [{ address: '999.1.1.1' }] }, jkt.zones[1]] }, field: 'body.zones.0.endpoints.0.address', reason: /IPv4 or IPv6/ },
    { name: 'one zone only', body: { ...jkt, zones: [jkt.zones[0]] }, field: 'body.zones', reason: /two or more/ },
    { name: 'an unknown field', body: { ...jkt, colour: 'blue' }, field: 'body', reason: /colour/ },
    { name: 'an id that is not the path', body: { ...jkt, id: 'sg' }, field: 'body.id', reason: /must be "jkt"/ },
    { name: 'a latitude past the pole', body: { ...jkt, location: { lat: 91, lon: 0 } }, field: 'body.location.lat', reason: /90/ },
  ])('PUT with $name is a 400 naming the field, and changes nothing', async ({ body, field, reason }) => {
    const api = testApi();
    const before = api.state();
    const res = await api.call('PUT', '/v1/regions/jkt', { body });
    expect(res.status).toBe(400);
    const err = (await res.json()) as { error: string; fields: { path: string; message: string }[] };
    const hit = err.fields.find((f) => f.path === field);
    expect(hit, JSON.stringify(err)).toBeDefined();
    expect(hit!.message).toMatch(reason);
    expect(api.state()).toBe(before);
  });

  it('rejects malformed JSON and an oversized body without a 5xx', async () => {
    const api = testApi();
    const bad = await api.call('PUT', '/v1/regions/jkt', { raw: '{"id": "jkt",', headers: { 'content-type': 'application/json' } });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: expect.any(String) });
    const huge = await api.call('PUT', '/v1/regions/jkt', { raw: JSON.stringify({ ...jkt, name: 'x'.repeat(2 * 1024 * 1024) }), headers: { 'content-type': 'application/json' } });
    expect(huge.status).toBe(413);
  });

  it('PATCH merges, validates the result, and keeps the id', async () => {
    const api = testApi();
    const ok = await api.call('PATCH', '/v1/regions/sg', { body: { name: 'Singapore (Jurong)' } });
    expect(ok.status).toBe(200);
    expect(api.store.getConfig()!.regions.find((r) => r.id === 'sg')!.name).toBe('Singapore (Jurong)');
    const before = api.state();
    expect((await api.call('PATCH', '/v1/regions/sg', { body: { zones: [] } })).status).toBe(400);
    expect((await api.call('PATCH', '/v1/regions/sg', { body: { id: 'kl' } })).status).toBe(400);
    expect((await api.call('PATCH', '/v1/regions/nowhere', { body: { name: 'x' } })).status).toBe(404);
    expect(api.state()).toBe(before);
  });

  it('If-Match makes a write conditional: a stale ETag is refused', async () => {
    const api = testApi();
    const tag = (await api.call('GET', '/v1/regions/jkt')).headers.get('etag')!;
    expect((await api.call('PATCH', '/v1/regions/jkt', { body: { name: 'Jakarta 1' }, headers: { 'if-match': tag } })).status).toBe(200);
    const before = api.state();
    const stale = await api.call('PATCH', '/v1/regions/jkt', { body: { name: 'Jakarta 2' }, headers: { 'if-match': tag } });
    expect(stale.status).toBe(412);
    expect(api.state()).toBe(before);
  });

  it('DELETE refuses the last region serving a service unless forced, and the default region always', async () => {
    const api = testApi();
    await api.call('PUT', '/v1/services/batch', { body: { name: 'batch', regions: ['bkk'] } });
    const before = api.state();
    const refused = await api.call('DELETE', '/v1/regions/bkk');
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: string }).error).toMatch(/last region serving batch/);
    expect(api.state()).toBe(before);
    const sg = await api.call('DELETE', '/v1/regions/sg?force=true');
    expect(sg.status).toBe(400); // the default region: the configuration would be invalid
    expect(api.state()).toBe(before);
    const forced = await api.call('DELETE', '/v1/regions/bkk?force=true');
    expect(forced.status).toBe(200);
    expect(api.store.getConfig()!.regions.map((r) => r.id)).not.toContain('bkk');
    expect(api.store.getConfig()!.zone.services.find((s) => s.name === 'batch')!.regions).toEqual([]);
    expect((await api.call('DELETE', '/v1/regions/mnl')).status).toBe(200);
  });
});

describe('services and zone', () => {
  it('creates, patches and deletes a service; refuses to delete the last one', async () => {
    const api = testApi();
    expect((await api.call('PUT', '/v1/services/chat', { body: { name: 'chat', ttl: 20, policy: 'latency' } })).status).toBe(201);
    expect(api.control.current().snapshot.services.get('chat')).toMatchObject({ ttl: 20, policy: 'latency' });
    expect((await api.call('PATCH', '/v1/services/chat', { body: { failMode: 'closed' } })).status).toBe(200);
    expect(api.store.getConfig()!.zone.services.find((s) => s.name === 'chat')!.failMode).toBe('closed');
    const bad = await api.call('PUT', '/v1/services/chat', { body: { name: 'chat', policy: 'round-robin' } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { fields: { path: string }[] }).fields[0].path).toBe('body.policy');
    expect((await api.call('DELETE', '/v1/services/chat')).status).toBe(200);
    expect((await api.call('DELETE', '/v1/services/api')).status).toBe(409);
    expect((await api.call('GET', '/v1/services', { token: 'viewer' })).status).toBe(200);
  });

  it('reads and replaces the zone settings', async () => {
    const api = testApi();
    const zone = (await (await api.call('GET', '/v1/zone')).json()) as Record<string, unknown>;
    expect(zone.apex).toBe('gslb.example.com');
    expect((await api.call('PUT', '/v1/zone', { body: { ...zone, defaultRegion: 'mnl' } })).status).toBe(200);
    expect(api.control.current().snapshot.zone.defaultRegion).toBe('mnl');
    const before = api.state();
    const dangling = await api.call('PUT', '/v1/zone', { body: { ...zone, defaultRegion: 'kul' } });
    expect(dangling.status).toBe(400);
    expect(await dangling.json()).toMatchObject({ fields: [{ path: 'zone.defaultRegion', message: 'no region "kul"' }] });
    expect(api.state()).toBe(before);
  });
});

describe('drains', () => {
  it('drains a region with a reason: clients move, an event and an audit row appear; undrain brings them back', async () => {
    const api = testApi();
    expect(indonesia(api).region).toBe('jkt');
    const res = await api.call('POST', '/v1/regions/jkt/drain', { body: { reason: 'GPU driver upgrade' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ subject: 'region:jkt', override: 'drain', changed: true });
    expect(indonesia(api).region).toBe('sg');
    const [drain] = api.store.listEvents({ kind: 'drain' });
    expect(drain).toMatchObject({ subject: 'region:jkt', newState: 'drain' });
    expect(drain.reason).toMatch(/GPU driver upgrade \(by test-admin\)/);
    expect(api.store.listEvents({ kind: 'failover' })[0].reason).toMatch(/admin override/);
    expect((await api.call('POST', '/v1/regions/jkt/undrain')).status).toBe(200);
    expect(indonesia(api).region).toBe('jkt');
  });

  it('drains a zone and an endpoint; rejects unknown subjects and missing reasons', async () => {
    const api = testApi();
    expect((await api.call('POST', '/v1/regions/jkt/zones/jkt-a/drain', { body: { reason: 'rack power' } })).status).toBe(200);
    expect(indonesia(api).answers.map((a) => a.address)).toEqual(['127.0.1.22']);
    expect((await api.call('POST', '/v1/regions/jkt/zones/jkt-b/endpoints/127.0.1.22/force-up', { body: { reason: 'known good' } })).status).toBe(200);
    const before = api.state();
    expect((await api.call('POST', '/v1/regions/jkt/zones/jkt-z/drain', { body: { reason: 'x' } })).status).toBe(404);
    expect((await api.call('POST', '/v1/regions/jkt/drain', { body: {} })).status).toBe(400);
    expect((await api.call('POST', '/v1/regions/jkt/drain', { body: { reason: '   ' } })).status).toBe(400);
    expect(api.state()).toBe(before);
  });

  it('lets an operator drain and undrain, and read, but not change the configuration', async () => {
    const api = testApi();
    const drain = await api.call('POST', '/v1/regions/jkt/drain', { token: 'operator', body: { reason: 'GPU driver upgrade' } });
    expect(drain.status).toBe(200);
    expect(indonesia(api).region).toBe('sg');
    expect(api.store.listEvents({ kind: 'drain' })[0].reason).toMatch(/GPU driver upgrade \(by test-operator\)/);
    expect(api.audit.list({}).entries[0]).toMatchObject({ actor: 'test-operator', role: 'operator', action: 'POST /v1/regions/jkt/drain', status: 200 });
    expect((await api.call('POST', '/v1/regions/jkt/undrain', { token: 'operator' })).status).toBe(200);
    expect(indonesia(api).region).toBe('jkt');

    const before = api.state();
    const region = api.store.getConfig()!.regions.find((r) => r.id === 'jkt')!;
    const zone = (await (await api.call('GET', '/v1/zone', { token: 'operator' })).json()) as Record<string, unknown>;
    for (const [method, path, body] of [
      ['PUT', '/v1/regions/jkt', { ...region, name: 'Jakarta 2' }],
      ['PATCH', '/v1/regions/jkt', { name: 'Jakarta 2' }],
      ['PUT', '/v1/zone', { ...zone, defaultRegion: 'mnl' }],
      ['DELETE', '/v1/regions/mnl', undefined],
      ['PUT', '/v1/services/chat', { name: 'chat' }],
    ] as const) {
      const res = await api.call(method, path, { token: 'operator', body });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(await res.json()).toEqual({ error: 'this route needs the admin role; the token "test-operator" has operator' });
    }
    expect(api.state()).toBe(before);
    for (const path of ['/v1/regions', '/v1/regions/jkt', '/v1/zone', '/v1/services', '/v1/health', '/v1/events', '/v1/probes', '/v1/capacity', '/v1/audit', '/v1/resolve?name=api.gslb.example.com&client=192.0.2.1'])
      expect((await api.call('GET', path, { token: 'operator' })).status, path).toBe(200);
  });
});

describe('reads: health, events, resolve, probes', () => {
  it('explains a decision with the same steer() DNS uses', async () => {
    const api = testApi();
    const res = await api.call('GET', '/v1/resolve?name=api.gslb.example.com&client=192.0.2.1&ecs=36.66.0.0/24', { token: 'viewer' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { outcome: string; decision: { region: string; trace: string[] }; ecs: { scope: number } };
    expect(body).toMatchObject({ outcome: 'answer', decision: { region: 'jkt' }, ecs: { scope: 11 } });
    expect(body.decision.trace.join('\n')).toMatch(/home of ID/);
    expect((await api.call('GET', '/v1/resolve?name=x.example.org&client=192.0.2.1')).status).toBe(200);
    expect((await api.call('GET', '/v1/resolve?name=api.gslb.example.com&client=nope')).status).toBe(400);
    expect((await api.call('GET', '/v1/resolve?name=api.gslb.example.com&client=192.0.2.1&type=MX')).status).toBe(400);
  });

  it('pages events with a cursor and filters them', async () => {
    const api = testApi();
    for (let i = 0; i < 5; i++) await api.call('PATCH', '/v1/regions/sg', { body: { name: `Singapore ${i}` } });
    const first = (await (await api.call('GET', '/v1/events?limit=3&kind=config.applied', { token: 'viewer' })).json()) as { events: { id: number }[]; next: number | null };
    expect(first.events).toHaveLength(3);
    expect(first.next).toBe(first.events[2].id);
    const second = (await (await api.call('GET', `/v1/events?limit=3&kind=config.applied&cursor=${first.next}`)).json()) as { events: { id: number }[] };
    expect(second.events[0].id).toBeLessThan(first.events[2].id);
    expect((await api.call('GET', '/v1/events?limit=0')).status).toBe(400);
    expect((await api.call('GET', '/v1/events?since=yesterday')).status).toBe(400);
    const region = (await (await api.call('GET', '/v1/events?region=sg')).json()) as { events: { region: string }[] };
    expect(region.events.every((e) => e.region === 'sg')).toBe(true);
  });

  it('streams new events as server-sent events', async () => {
    const api = testApi();
    const res = await api.call('GET', '/v1/events/stream', { token: 'viewer' });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const read = async (until: RegExp) => {
      while (!until.test(text)) text += decoder.decode((await reader.read()).value);
    };
    await read(/event: ready/);
    await api.call('POST', '/v1/regions/mnl/drain', { body: { reason: 'stream test' } });
    await read(/event: drain\n/);
    expect(text).toMatch(/data: .*"subject":"region:mnl"/);
    await reader.cancel();
  });

  it('shows health with evidence, and probe agents with their votes', async () => {
    const api = testApi();
    const report = await api.call('POST', '/v1/probes/report', {
      token: 'probe',
      body: { agent: PROBE_AGENT, results: [{ endpoint: 'sg/sg-a/127.0.1.11', ok: true, rttMs: 1.5, at: Date.now() }] },
    });
    expect(report.status).toBe(200);
    const health = (await (await api.call('GET', '/v1/health', { token: 'viewer' })).json()) as { regions: { id: string; status: string }[] };
    expect(health.regions.map((r) => [r.id, r.status])).toContainEqual(['sg', 'up']);
    const probes = (await (await api.call('GET', '/v1/probes', { token: 'viewer' })).json()) as { agents: { id: string; votes: unknown[]; recent: unknown[] }[] };
    expect(probes.agents[0]).toMatchObject({ id: 'jkt-1', region: 'jkt' });
    expect(probes.agents[0].votes).toHaveLength(1);
    expect(probes.agents[0].recent).toHaveLength(1);
    const bad = await api.call('POST', '/v1/probes/report', { token: 'probe', body: { agent: PROBE_AGENT, results: [{ endpoint: 'e', ok: 'yes', at: 1 }] } });
    expect(bad.status).toBe(400);
  });
});
