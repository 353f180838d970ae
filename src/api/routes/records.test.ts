// /v1/records through app.request() over a real in-memory SQLite store: each
// write is a configuration write (audited, in the history, in the next
// snapshot, SOA serial up), refused whole with the field when invalid.
import { Packet } from 'dns2';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createResponder } from '../../dns/responder.js';
import { query } from '../../dns/fixtures.js';
import { TYPE } from '../../dns/wire.js';
import { silentLogger } from '../../log.js';
import { testApi } from '../testing.js';

type Rec = { name: string; type: string; ttl: number; values: string[] };
const acme = '/v1/records/_acme-challenge/TXT';

/** What DNS answers from the API's control, in process. */
function dnsOf(api: ReturnType<typeof testApi>) {
  const responder = createResponder({ getState: api.control.current, log: silentLogger() });
  return (name: string, type: number) => Packet.parse(responder(query({ name, type }), { address: '127.0.0.1' }, 'udp')!);
}

describe('/v1/records', () => {
  it('lists the zone file records, filtered by name and type, for a viewer', async () => {
    const api = testApi();
    const all = (await (await api.call('GET', '/v1/records', { token: 'viewer' })).json()) as { records: Rec[] };
    expect(all.records.map((r) => `${r.name} ${r.type}`)).toEqual(['@ CAA', '@ TXT']);
    const caa = (await (await api.call('GET', '/v1/records?type=caa&name=gslb.example.com.', { token: 'viewer' })).json()) as { records: Rec[] };
    expect(caa.records).toEqual([{ name: '@', type: 'CAA', ttl: 300, values: ['0 issue "letsencrypt.org"', '0 issuewild "letsencrypt.org"'] }]);
    const bad = await api.call('GET', '/v1/records?type=SPF', { token: 'viewer' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ fields: [{ path: 'query.type', message: expect.stringMatching(/one of A, AAAA/) }] });
  });

  it('PUT creates an RRset (201): audited, in the history, in the next snapshot, the SOA serial up; GET has its ETag', async () => {
    const api = testApi();
    const dns = dnsOf(api);
    const serial = dns('gslb.example.com', TYPE.SOA).answers[0].serial!;
    expect(dns('_acme-challenge.gslb.example.com', TYPE.TXT).header.rcode).toBe(3);
    const res = await api.call('PUT', acme, { body: { ttl: 60, values: ['token-1', 'token-2'] } });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ changed: ['zone-settings'] });
    expect(res.headers.get('etag')).toMatch(/^"[\w-]+"$/);

    const txt = dns('_acme-challenge.gslb.example.com', TYPE.TXT);
    expect(txt.answers.map((a) => [a.data, a.ttl])).toEqual([[['token-1'], 60], [['token-2'], 60]]);
    expect(dns('gslb.example.com', TYPE.SOA).answers[0].serial).toBeGreaterThan(serial);
    expect(api.audit.list({}).entries[0]).toMatchObject({ actor: 'test-admin', action: `PUT ${acme}`, subject: 'record:_acme-challenge.gslb.example.com/TXT', status: 201, before: null });
    expect(api.store.listEvents({ limit: 1 })[0]).toMatchObject({ kind: 'config.applied', subject: 'zone-settings', reason: expect.stringMatching(/records/) });

    const got = await api.call('GET', '/v1/records/_ACME-challenge.gslb.example.com./txt', { token: 'viewer' });
    expect(got.status).toBe(200);
    expect(got.headers.get('etag')).toBe(res.headers.get('etag'));
    expect(await got.json()).toEqual({ name: '_acme-challenge', type: 'TXT', ttl: 60, values: ['token-1', 'token-2'] });
  });

  it('PUT replaces under If-Match (412 with a stale ETag), DELETE removes (then 404), and the zone is as it was', async () => {
    const api = testApi();
    const zoneBefore = api.store.getConfig()!.zone;
    const created = await api.call('PUT', acme, { body: { value: 'one' } });
    const tag = created.headers.get('etag')!;
    const replaced = await api.call('PUT', acme, { body: { value: 'two' }, headers: { 'if-match': tag } });
    expect(replaced.status).toBe(200);
    expect((await api.call('PUT', acme, { body: { value: 'three' }, headers: { 'if-match': tag } })).status).toBe(412);
    expect((await api.call('PUT', '/v1/records/new/TXT', { body: { value: 'x' }, headers: { 'if-match': '"nope"' } })).status).toBe(412);
    expect(dnsOf(api)('_acme-challenge.gslb.example.com', TYPE.TXT).answers[0].data).toEqual(['two']);
    const deleted = await api.call('DELETE', acme);
    expect(deleted.status).toBe(200);
    expect(dnsOf(api)('_acme-challenge.gslb.example.com', TYPE.TXT).header.rcode).toBe(3);
    expect((await api.call('DELETE', acme)).status).toBe(404);
    expect((await api.call('GET', acme)).status).toBe(404);
    expect(api.store.getConfig()!.zone).toEqual(zoneBefore);
  });

  it('replacing a zone-file RRset through the API keeps its spelling (@)', async () => {
    const api = testApi();
    expect((await api.call('PUT', '/v1/records/gslb.example.com./CAA', { body: { value: '0 issue "pki.goog"' } })).status).toBe(200);
    expect(api.store.getConfig()!.zone.records!.filter((r) => r.type === 'CAA')).toEqual([{ name: '@', type: 'CAA', ttl: 300, values: ['0 issue "pki.goog"'] }]);
  });

  it.each([
    ['a value that does not parse', '/v1/records/web/A', { values: ['192.0.2.1', '999.0.0.1'] }, 'body.values.1', /IPv4 address/],
    ['an unknown field', '/v1/records/web/A', { value: '192.0.2.1', valeus: [] }, 'body', /valeus/],
    ['a body name other than the path', '/v1/records/web/A', { name: 'www', value: '192.0.2.1' }, 'body.name', /must be web.gslb.example.com/],
    ['an unknown type', '/v1/records/web/NS', { value: 'ns.example.net' }, 'path.type', /one of A/],
    ['a name outside the zone', '/v1/records/web.example.org./A', { value: '192.0.2.1' }, 'path.name', /outside the zone/],
    ['a service name', '/v1/records/api/TXT', { value: 'x' }, 'body.name', /name of service api/],
    ['a pinned service name', '/v1/records/jkt.api/A', { value: '192.0.2.1' }, 'body.name', /pinned name of service api in region jkt/],
    ['a CNAME beside the apex records', '/v1/records/@/CNAME', { value: 'lb.example.net' }, 'body.type', /cannot be at the apex/],
  ])('PUT with %s: 400 naming the field, nothing changed', async (_, path, body, field, reason) => {
    const api = testApi();
    const before = api.state();
    const res = await api.call('PUT', path, { body });
    expect(res.status).toBe(400);
    const err = (await res.json()) as { fields: { path: string; message: string }[] };
    expect(err.fields.find((f) => f.path === field)?.message, JSON.stringify(err)).toMatch(reason);
    expect(api.state()).toBe(before);
  });

  it('a CNAME beside another RRset: 400 on the second write, whichever comes first', async () => {
    const api = testApi();
    expect((await api.call('PUT', '/v1/records/www/TXT', { body: { value: 'x' } })).status).toBe(201);
    const res = await api.call('PUT', '/v1/records/www/CNAME', { body: { value: 'web.example.net.' } });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toMatch(/a CNAME cannot be beside other data/);
  });

  it('writes need admin: a viewer gets 403', async () => {
    const api = testApi();
    expect((await api.call('PUT', acme, { token: 'viewer', body: { value: 'x' } })).status).toBe(403);
    expect((await api.call('DELETE', '/v1/records/@/TXT', { token: 'operator' })).status).toBe(403);
  });

  it('is in the OpenAPI document', async () => {
    const doc = (await (await testApi().call('GET', '/openapi.json', { token: null })).json()) as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(doc.paths['/v1/records'])).toEqual(['get']);
    expect(Object.keys(doc.paths['/v1/records/{name}/{type}']).sort()).toEqual(['delete', 'get', 'put']);
  });
});

describe('/v1/records under random input (property)', () => {
  it('never answers 5xx, and a rejected write changes nothing', async () => {
    const api = testApi();
    const segment = fc.oneof(fc.constantFrom('@', 'www', '*.dev', '_acme-challenge', 'api', 'jkt.api', 'x.example.org.', 'a.*.b', '%2A', '..', 'A'.repeat(300)), fc.string({ maxLength: 20 }).map(encodeURIComponent));
    const type = fc.oneof(fc.constantFrom('A', 'aaaa', 'CNAME', 'TXT', 'CAA', 'MX', 'SRV', 'NS', ''), fc.string({ maxLength: 6 }).map(encodeURIComponent));
    const value = fc.oneof(fc.constantFrom('192.0.2.1', '2001:db8::1', 'web.example.net.', '0 issue "ca.example"', '10 mx.example.net', '1 2 3 t.example.net', '.', '@', '', 'é'.repeat(3000)), fc.string());
    const body = fc.oneof(
      fc.record({ ttl: fc.oneof(fc.integer(), fc.constant(undefined)), value: fc.oneof(value, fc.constant(undefined)), values: fc.oneof(fc.array(value, { maxLength: 4 }), fc.constant(undefined)) }, { requiredKeys: [] }).map((b) => JSON.stringify(b)),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string(),
    );
    let rejected = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('PUT', 'DELETE', 'GET'), segment, type, body, fc.constantFrom(undefined, '*', '"nope"'), async (method, name, t, raw, ifMatch) => {
        const before = api.state();
        const headers: Record<string, string> = { authorization: 'Bearer admin-token', 'content-type': 'application/json', ...(ifMatch ? { 'if-match': ifMatch } : {}) };
        const res = await api.app.request(`/v1/records/${name}/${t}`, { method, headers, body: method === 'PUT' ? raw : undefined });
        expect(res.status, `${method} ${name} ${t} ${raw.slice(0, 200)}`).toBeLessThan(500);
        if (res.status >= 400) {
          rejected++;
          expect(api.state()).toBe(before);
          expect(typeof ((await res.json()) as { error?: string }).error).toBe('string');
        }
      }),
      { numRuns: 1500, seed: 2136 },
    );
    expect(rejected).toBeGreaterThan(500);
  }, 120_000);
});
