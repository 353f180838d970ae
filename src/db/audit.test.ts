import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditStore, type AuditStore, type NewAuditEntry } from './audit.js';
import { openDatabase, type Db } from './database.js';

let db: Db;
let clock: number;
let audit: AuditStore;

beforeEach(() => {
  db = openDatabase(':memory:');
  clock = 1_700_000_000_000;
  audit = createAuditStore(db, { now: () => clock });
});
afterEach(() => db.$client.close());

const write = (over: Partial<NewAuditEntry> = {}) =>
  audit.record({ actor: 'ops', role: 'admin', action: 'PUT /v1/regions/sg', subject: 'region:sg', before: null, after: { id: 'sg' }, status: 200, ...over });

describe('audit store', () => {
  it('records an entry and reads its before and after back as JSON', () => {
    const before = { id: 'sg', zones: [{ id: 'sg-a', endpoints: [{ address: '203.0.113.10' }] }] };
    const after = { ...before, weight: 2 };
    const e = write({ before, after, status: 200 });
    expect(e).toEqual({ id: 1, time: clock, actor: 'ops', role: 'admin', action: 'PUT /v1/regions/sg', subject: 'region:sg', before, after, status: 200 });
    expect(audit.list().entries).toEqual([e]);
    const row = db.$client.prepare('SELECT before, after FROM audit').get() as { before: string; after: string };
    expect(JSON.parse(row.before)).toEqual(before);
  });

  it('keeps a missing before or after as null', () => {
    write({ before: undefined, after: undefined, subject: 'region:jkt', action: 'DELETE /v1/regions/jkt', status: 204 });
    const [e] = audit.list().entries;
    expect(e.before).toBeNull();
    expect(e.after).toBeNull();
  });

  it('lists newest first and filters by time, actor and subject', () => {
    write({ time: 1000, actor: 'ops', subject: 'region:sg' });
    write({ time: 2000, actor: 'ci', subject: 'region:jkt' });
    write({ time: 3000, actor: 'ops', subject: 'region:jkt' });
    write({ time: 4000, actor: 'ci', subject: 'service:api' });
    const ids = (q: Parameters<AuditStore['list']>[0]) => audit.list(q).entries.map((e) => e.id);
    expect(ids({})).toEqual([4, 3, 2, 1]);
    expect(ids({ since: 2000 })).toEqual([4, 3, 2]);
    expect(ids({ until: 3000 })).toEqual([2, 1]);
    expect(ids({ since: 2000, until: 4000 })).toEqual([3, 2]);
    expect(ids({ actor: 'ci' })).toEqual([4, 2]);
    expect(ids({ subject: 'region:jkt' })).toEqual([3, 2]);
    expect(ids({ actor: 'ops', subject: 'region:jkt' })).toEqual([3]);
    expect(ids({ actor: 'nobody' })).toEqual([]);
  });

  it('pages with the cursor: every entry once, in order, and no next after the last', () => {
    for (let i = 0; i < 25; i++) write({ time: clock + i, actor: i % 2 ? 'ci' : 'ops' });
    const seen: number[] = [];
    const sizes: number[] = [];
    let cursor: number | undefined;
    for (;;) {
      const page = audit.list({ limit: 10, cursor });
      sizes.push(page.entries.length);
      seen.push(...page.entries.map((e) => e.id));
      if (page.next === undefined) break;
      expect(page.next).toBe(page.entries[page.entries.length - 1].id);
      cursor = page.next;
    }
    expect(sizes).toEqual([10, 10, 5]);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => 25 - i));
  });

  it('gives no next when the last page is exactly full, and pages within a filter', () => {
    for (let i = 0; i < 20; i++) write({ actor: i < 10 ? 'ops' : 'ci' });
    const first = audit.list({ limit: 10 });
    expect(first.next).toBe(11);
    const second = audit.list({ limit: 10, cursor: first.next });
    expect(second.entries.map((e) => e.id)).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
    expect(second.next).toBeUndefined();
    const ops = audit.list({ actor: 'ops', limit: 4, cursor: 9 });
    expect(ops.entries.map((e) => e.id)).toEqual([8, 7, 6, 5]);
    expect(ops.next).toBe(5);
  });

  it('clamps the limit to 1..1000 and defaults to 100', () => {
    for (let i = 0; i < 120; i++) write();
    expect(audit.list().entries).toHaveLength(100);
    expect(audit.list({ limit: 0 }).entries).toHaveLength(1);
    expect(audit.list({ limit: -5 }).entries).toHaveLength(1);
    expect(audit.list({ limit: 5000 }).entries).toHaveLength(120);
  });
});
