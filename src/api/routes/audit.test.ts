import { OpenAPIHono } from '@hono/zod-openapi';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditStore, type AuditStore } from '../../db/audit.js';
import { openDatabase, type Db } from '../../db/database.js';
import { createTokenStore } from '../../db/tokens.js';
import { createAuth } from '../auth.js';
import type { Env } from '../env.js';
import { auditRoutes } from './audit.js';

let db: Db;
let audit: AuditStore;
let app: OpenAPIHono<Env>;
let tokens: { admin: string; viewer: string; probe: string };

beforeEach(() => {
  db = openDatabase(':memory:');
  audit = createAuditStore(db);
  const store = createTokenStore(db);
  tokens = {
    admin: store.create({ role: 'admin' }).token,
    viewer: store.create({ role: 'viewer' }).token,
    probe: store.create({ role: 'probe', agent: 'sg-1', region: 'sg' }).token,
  };
  const auth = createAuth({ tokens: store, sleep: async () => {} });
  app = new OpenAPIHono<Env>();
  app.use('*', auth.middleware);
  auditRoutes(app, { audit, requireRole: auth.requireRole });
});
afterEach(() => db.$client.close());

const get = (query = '', token: string | null = tokens.viewer) =>
  app.request(`/v1/audit${query}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

const T0 = Date.parse('2026-01-31T00:00:00Z');
function seed() {
  const rows = [
    { time: T0 - 60_000, actor: 'ops', subject: 'region:sg' },
    { time: T0, actor: 'ci', subject: 'region:jkt' },
    { time: T0 + 60_000, actor: 'ops', subject: 'region:jkt' },
    { time: T0 + 120_000, actor: 'ci', subject: 'service:api' },
  ];
  for (const r of rows) audit.record({ ...r, role: 'admin', action: `PUT /v1/x`, before: { n: 1 }, after: { n: 2 }, status: 200 });
}

describe('GET /v1/audit', () => {
  it('gives viewers and admins the entries, newest first; 401 without a token, 403 for probes', async () => {
    seed();
    for (const token of [tokens.viewer, tokens.admin]) {
      const res = await get('', token);
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(body.next).toBeNull();
      expect(body.entries.map((e: { id: number }) => e.id)).toEqual([4, 3, 2, 1]);
      expect(body.entries[0]).toEqual({ id: 4, time: T0 + 120_000, actor: 'ci', role: 'admin', action: 'PUT /v1/x', subject: 'service:api', before: { n: 1 }, after: { n: 2 }, status: 200 });
    }
    expect((await get('', null)).status).toBe(401);
    const probe = await get('', tokens.probe);
    expect(probe.status).toBe(403);
    expect((await probe.json()).error).toMatch(/viewer/);
  });

  it('filters by since and until (ms or ISO), actor and subject', async () => {
    seed();
    const ids = async (q: string) => {
      const res = await get(q);
      expect(res.status, q).toBe(200);
      return (await res.json()).entries.map((e: { id: number }) => e.id);
    };
    expect(await ids(`?since=${T0}`)).toEqual([4, 3, 2]);
    expect(await ids('?since=2026-01-31T00:00:00Z')).toEqual([4, 3, 2]);
    expect(await ids('?since=2026-01-31T00:00:00.001Z')).toEqual([4, 3]);
    expect(await ids(`?until=${T0}`)).toEqual([1]);
    expect(await ids(`?since=2026-01-31T00:00:00Z&until=${T0 + 120_000}`)).toEqual([3, 2]);
    expect(await ids('?actor=ci')).toEqual([4, 2]);
    expect(await ids('?subject=region:jkt')).toEqual([3, 2]);
    expect(await ids('?subject=region%3Ajkt&actor=ops')).toEqual([3]);
  });

  it('pages with limit and the next cursor', async () => {
    for (let i = 0; i < 7; i++) audit.record({ actor: 'ops', role: 'admin', action: 'PATCH /v1/x', subject: `s:${i}`, before: null, after: null, status: 200 });
    const seen: number[] = [];
    let q = '?limit=3';
    for (let pages = 0; pages < 10; pages++) {
      const body = await (await get(q)).json();
      seen.push(...body.entries.map((e: { id: number }) => e.id));
      if (body.next === null) break;
      q = `?limit=3&cursor=${body.next}`;
    }
    expect(seen).toEqual([7, 6, 5, 4, 3, 2, 1]);
  });

  it('400 naming the field and the reason for a bad query', async () => {
    const cases: [string, string][] = [
      ['?limit=0', 'query.limit'],
      ['?limit=1001', 'query.limit'],
      ['?limit=2.5', 'query.limit'],
      ['?limit=ten', 'query.limit'],
      ['?cursor=-1', 'query.cursor'],
      ['?cursor=x', 'query.cursor'],
      ['?since=yesterday', 'query.since'],
      ['?since=2026-13-45T00:00:00Z', 'query.since'],
      ['?until=', 'query.until'],
      [`?since=${T0}&until=${T0}`, 'query.until'],
      ['?actor=', 'query.actor'],
      [`?subject=${'x'.repeat(201)}`, 'query.subject'],
      ['?actor=a&actor=b', 'query.actor'],
    ];
    for (const [q, path] of cases) {
      const res = await get(q);
      expect(res.status, q).toBe(400);
      const body = await res.json();
      expect(body.error, q).toBe('invalid query');
      expect(body.fields, q).toEqual(expect.arrayContaining([expect.objectContaining({ path, message: expect.any(String) })]));
    }
    const since = await (await get('?since=soon')).json();
    expect(since.fields).toEqual([{ path: 'query.since', message: 'must be milliseconds since the epoch or an ISO 8601 time' }]);
  });

  it('checks the token before the query', async () => {
    expect((await get('?limit=0', null)).status).toBe(401);
    expect((await get('?limit=0', tokens.probe)).status).toBe(403);
  });

  it('is described in the OpenAPI document with its query parameters', () => {
    const doc = app.getOpenAPIDocument({ openapi: '3.0.3', info: { title: 't', version: '1' } });
    const op = doc.paths['/v1/audit']?.get;
    expect(op).toBeDefined();
    expect(op!.tags).toEqual(['audit']);
    expect((op!.parameters ?? []).map((p) => ('name' in p ? p.name : '')).sort()).toEqual(['actor', 'cursor', 'limit', 'since', 'subject', 'until']);
    expect(Object.keys(op!.responses).sort()).toEqual(['200', '400', '401', '403']);
  });
});
