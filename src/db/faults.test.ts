import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadDocuments, loadConfig } from '../config/load.js';
import { createAuditStore } from './audit.js';
import { createStorageGuard, StorageError, storageFault } from './faults.js';
import { createHealthStore } from './health-store.js';
import { createStore } from './store.js';
import { openDatabase } from './database.js';
import { createTokenStore } from './tokens.js';
import { configRules } from '../config/rules.js';

const REGIONS = fileURLToPath(new URL('../../regions', import.meta.url));
const sqliteError = (code: string, message = 'x') => Object.assign(new Error(message), { code });

describe('storage faults', () => {
  it.each([
    ['SQLITE_BUSY', 'busy', /the database is locked/],
    ['SQLITE_BUSY_TIMEOUT', 'busy', /locked/],
    ['SQLITE_LOCKED', 'busy', /locked/],
    ['SQLITE_READONLY', 'read-only', /the database is read-only/],
    ['SQLITE_READONLY_DBMOVED', 'read-only', /read-only/],
    ['SQLITE_FULL', 'full', /the disk is full/],
    ['SQLITE_IOERR_WRITE', 'io', /disk I\/O error/],
    ['SQLITE_CANTOPEN', 'cannot-open', /cannot open/],
    ['SQLITE_CORRUPT', 'corrupt', /corrupt/],
  ])('classifies %s as %s, with a message saying so', (code, kind, message) => {
    // drizzle wraps the driver's error: the code is found in the cause chain.
    const fault = storageFault(Object.assign(new Error('Failed query: insert ...'), { cause: sqliteError(code, 'database is locked') }));
    expect(fault).toBeInstanceOf(StorageError);
    expect(fault).toMatchObject({ kind, code });
    expect(fault!.message).toMatch(message);
    expect(fault!.retryAfterS).toBe(kind === 'busy' ? 1 : undefined);
  });

  it('leaves other errors alone: constraints, bugs', () => {
    expect(storageFault(sqliteError('SQLITE_CONSTRAINT_UNIQUE'))).toBeUndefined();
    expect(storageFault(new TypeError('x is undefined'))).toBeUndefined();
  });

  it('after SQLITE_BUSY, refuses writes at once for a back-off instead of waiting on the lock again', () => {
    let t = 0;
    const guard = createStorageGuard({ monotonic: () => t });
    const changes: boolean[] = [];
    guard.subscribe((c) => changes.push(c.failing));
    let tried = 0;
    const busy = () => {
      tried++;
      throw sqliteError('SQLITE_BUSY');
    };
    expect(() => guard.write(busy)).toThrow(StorageError);
    expect(() => guard.write(busy)).toThrow(/locked/);
    expect(tried).toBe(1);
    expect(guard.retryDue()).toBe(false);
    t += 2000;
    expect(guard.retryDue()).toBe(true);
    expect(() => guard.write(busy)).toThrow(expect.objectContaining({ retryAfterS: 4 }));
    expect(tried).toBe(2);
    t += 3999; // the back-off doubled
    expect(guard.retryDue()).toBe(false);
    t += 1;
    expect(guard.write(() => 42)).toBe(42);
    expect(changes).toEqual([true, false]);
    expect(guard.stats()).toMatchObject({ faults: { busy: 2 }, shortCircuited: 1 });
    expect(guard.stats().failing).toBeUndefined();
  });
});

describe('stores on a database that turns read-only', () => {
  function setUp() {
    const db = openDatabase(':memory:');
    const store = createStore(db, { rules: configRules });
    store.apply(loadDocuments([REGIONS]));
    const readOnly = (on: boolean) => db.$client.pragma(`query_only = ${on ? 'ON' : 'OFF'}`);
    return { db, store, health: createHealthStore(db), audit: createAuditStore(db), tokens: createTokenStore(db), readOnly };
  }

  it('refuses writes whole with a StorageError and keeps what was there', () => {
    const { store, health, audit, readOnly } = setUp();
    const before = JSON.stringify([store.getConfig(), store.version(), store.listEvents({ limit: 1000 })]);
    readOnly(true);
    const sg = structuredClone(loadConfig([REGIONS]).regions.find((r) => r.id === 'sg')!);
    sg.name = 'Singapore (changed)';
    expect(() => store.apply({ regions: [sg] })).toThrow(expect.objectContaining({ kind: 'read-only', message: expect.stringMatching(/^the database is read-only/) }));
    expect(() => health.setOverride({ subject: 'region:sg', mode: 'drain', reason: 'x' })).toThrow(StorageError);
    expect(() => audit.record({ actor: 'a', role: 'admin', action: 'PUT /v1/regions/sg', subject: 'region:sg', status: 200 })).toThrow(StorageError);
    expect(() => store.transaction(() => store.recordEvent({ kind: 'k', subject: 's', oldState: 'a', newState: 'b', reason: 'r' }))).toThrow(StorageError);
    expect(JSON.stringify([store.getConfig(), store.version(), store.listEvents({ limit: 1000 })])).toBe(before);
  });

  it('keeps deferred events in order until the database takes them, and drops the oldest past the limit', () => {
    const db = openDatabase(':memory:');
    const store = createStore(db, { rules: configRules, maxPendingEvents: 3 });
    db.$client.pragma('query_only = ON');
    for (let i = 1; i <= 5; i++) store.deferEvent({ kind: 'test', subject: `s${i}`, oldState: 'a', newState: 'b', reason: 'r', time: i });
    expect(store.pending()).toEqual({ events: 3, dropped: 2 });
    expect(store.flushEvents()).toBe(false);
    db.$client.pragma('query_only = OFF');
    expect(store.flushEvents()).toBe(true);
    expect(store.listEvents().map((e) => [e.subject, e.time])).toEqual([['s5', 5], ['s4', 4], ['s3', 3]]);
    expect(store.pending().events).toBe(0);
  });

  it('still verifies tokens (their last use is bookkeeping)', () => {
    const { tokens, readOnly } = setUp();
    const { token } = tokens.create({ role: 'viewer', name: 'grafana' });
    readOnly(true);
    expect(tokens.verify(token)).toMatchObject({ role: 'viewer', name: 'grafana' });
    expect(() => tokens.create({ role: 'viewer' })).toThrow(StorageError);
  });

  it('prunes raw results by age and, past a row limit, oldest first', () => {
    const { health } = setUp();
    health.recordResults({ id: 'a', region: 'sg' }, Array.from({ length: 10 }, (_, i) => ({ endpoint: 'sg/sg-a/127.0.1.11', ok: true, rttMs: 1, at: 1000 + i })));
    expect(health.pruneResults(1003, 5)).toEqual({ expired: 3, overflow: 2 });
    expect(health.recentResults().map((r) => r.time)).toEqual([1009, 1008, 1007, 1006, 1005]);
  });
});
