import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { thrownConfigError } from '../config/config-error.case.js';
import { loadConfig } from '../config/load.js';
import type { Documents } from './documents.js';
import type { Config, RegionDoc } from '../config/schema.js';
import { seedIfEmpty } from '../config/seed.js';
import { BUSY_TIMEOUT_MS } from './database.js';
import { canonicalJson } from './documents.js';
import { createStore, type Store } from './store.js';
import { openDatabase, type Db } from './database.js';
import { configRules } from '../config/rules.js';

const regionsDir = fileURLToPath(new URL('../../regions', import.meta.url));
const defaults: Config = loadConfig([regionsDir]);
const byId = (id: string) => structuredClone(defaults.regions.find((r) => r.id === id)!);
const sortById = (rs: RegionDoc[]) => [...rs].sort((a, b) => a.id.localeCompare(b.id));

const tmp = mkdtempSync(join(tmpdir(), 'arus-store-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let fileCount = 0;


// The same behaviour on an in-memory database and on a real file.
describe.each([
  ['in memory', () => ':memory:'],
  ['in a file', () => join(tmp, `nested-${++fileCount}`, 'arus.db')],
])('store %s', (_label, location) => {
  let db: Db;
  let store: Store;
  let clock: number;

  beforeEach(() => {
    clock = 1_700_000_000_000;
    db = openDatabase(location());
    store = createStore(db, { rules: configRules, now: () => clock });
  });
  afterEach(() => db.$client.close());

  const all: Documents = { zone: defaults.zone, regions: defaults.regions };

  it('follows events after an id, oldest first, for the event stream', () => {
    const ids = [1, 2, 3, 4].map((i) => store.recordEvent({ kind: 'test', subject: `s${i}`, oldState: 'a', newState: 'b', reason: 'r' }).id);
    expect(store.listEvents({ after: ids[1] }).map((e) => e.id)).toEqual([ids[2], ids[3]]);
    expect(store.listEvents({ after: ids[3] })).toEqual([]);
    expect(store.listEvents({ after: ids[0], limit: 2 }).map((e) => e.id)).toEqual([ids[1], ids[2]]);
  });

  it('starts empty', () => {
    expect(store.isEmpty()).toBe(true);
    expect(store.getConfig()).toBeUndefined();
    expect(store.version()).toBe(0);
    expect(store.listEvents()).toEqual([]);
  });

  it('applies a whole configuration: version 1, one event per document', () => {
    const result = store.apply(all, { actor: 'cli' });
    expect(result).toEqual({ version: 1, changed: ['zone-settings', 'region:bkk', 'region:jkt', 'region:mnl', 'region:sg'] });
    expect(store.isEmpty()).toBe(false);
    expect(store.version()).toBe(1);
    expect(store.getConfig()).toEqual({ zone: defaults.zone, regions: sortById(defaults.regions) });

    const events = store.listEvents({ limit: 50 });
    expect(events).toHaveLength(5);
    expect(events.map((e) => e.kind)).toEqual(Array(5).fill('config.applied'));
    expect(events[0]).toMatchObject({
      time: clock,
      subject: 'region:sg',
      region: 'sg',
      oldState: 'absent',
      newState: 'present',
      reason: 'region sg created by cli',
      data: { actor: 'cli', fields: null },
    });
    expect(events[4]).toMatchObject({ subject: 'zone-settings', region: null, reason: 'zone settings for gslb.example.com created by cli' });
  });

  it('re-applying the same documents changes nothing and keeps the version', () => {
    store.apply(all);
    clock += 1000;
    // Key order and defaults written out explicitly do not count as changes.
    const reordered = Object.fromEntries(Object.entries(byId('sg')).reverse()) as RegionDoc;
    expect(store.apply({ regions: [reordered] })).toEqual({ version: 1, changed: [] });
    expect(store.apply(all)).toEqual({ version: 1, changed: [] });
    expect(store.version()).toBe(1);
    expect(store.listEvents({ limit: 100 })).toHaveLength(5);
  });

  it('upserts only the changed region and says which fields changed', () => {
    store.apply(all);
    clock += 1000;
    const sg = byId('sg');
    sg.zones[0].endpoints[0].weight = 50;
    sg.name = 'Singapore 2';
    expect(store.apply({ regions: [sg, byId('jkt')] }, { actor: 'alice' })).toEqual({ version: 2, changed: ['region:sg'] });
    expect(store.getConfig()?.regions.find((r) => r.id === 'sg')).toEqual(sg);
    const [latest] = store.listEvents({ limit: 1 });
    expect(latest).toMatchObject({
      kind: 'config.applied',
      subject: 'region:sg',
      oldState: 'present',
      newState: 'present',
      time: clock,
      reason: 'region sg updated (name, zones) by alice',
      data: { actor: 'alice', fields: ['name', 'zones'] },
    });
  });

  it('adds a new region and updates the zone settings in one version', () => {
    store.apply(all);
    const kul: RegionDoc = { ...byId('sg'), id: 'kul', name: 'Kuala Lumpur', countries: ['MY'] };
    kul.zones = kul.zones.map((z, i) => ({ ...z, id: `kul-${i}`, endpoints: z.endpoints.map((e, j) => ({ ...e, address: `198.18.${i}.${j + 1}` })) }));
    const zone = { ...defaults.zone, defaultRegion: 'kul' };
    const result = store.apply({ zone, regions: [kul] }, { reason: 'open Kuala Lumpur' });
    expect(result).toEqual({ version: 2, changed: ['zone-settings', 'region:kul'] });
    expect(store.getConfig()?.zone.defaultRegion).toBe('kul');
    expect(store.getConfig()?.regions.map((r) => r.id)).toEqual(['bkk', 'jkt', 'kul', 'mnl', 'sg']);
    expect(store.listEvents({ limit: 2 }).map((e) => [e.subject, e.oldState, e.reason])).toEqual([
      ['region:kul', 'absent', 'open Kuala Lumpur'],
      ['zone-settings', 'present', 'open Kuala Lumpur'],
    ]);
  });

  it('a rejected apply changes nothing, not even the valid documents beside it', () => {
    store.apply(all);
    const before = { config: store.getConfig(), events: store.listEvents({ limit: 100 }) };
    const sg = byId('sg');
    sg.name = 'changed';
    const err = thrownConfigError(() => store.apply({ zone: { ...defaults.zone, defaultRegion: 'kul' }, regions: [sg] }));
    expect(err.message).toContain('zone.defaultRegion: no region "kul"');
    expect(store.getConfig()).toEqual(before.config);
    expect(store.listEvents({ limit: 100 })).toEqual(before.events);
    expect(store.version()).toBe(1);
  });

  it.each<[string, Documents, string]>([
    ['regions without any zone settings', { regions: defaults.regions }, "no zone settings"],
    ['a dangling defaultRegion', { zone: defaults.zone, regions: [byId('jkt')] }, 'zone.defaultRegion: no region "sg"'],
    ['the same region twice', { zone: defaults.zone, regions: [byId('sg'), byId('sg')] }, 'region:sg: id: region "sg" given twice'],
    [
      'a region with one zone',
      { zone: defaults.zone, regions: [{ ...byId('sg'), zones: byId('sg').zones.slice(0, 1) }] },
      'region:sg: zones: a region needs two or more availability zones',
    ],
    [
      'a document that skipped validation',
      { zone: defaults.zone, regions: [{ ...byId('sg'), location: { lat: 91, lon: 0 } }] },
      'region:sg: location.lat: Too big',
    ],
  ])('rejects %s on an empty database and stays empty', (_name, docs, message) => {
    expect(thrownConfigError(() => store.apply(docs)).message).toContain(message);
    expect(store.isEmpty()).toBe(true);
    expect(store.version()).toBe(0);
    expect(store.listEvents()).toEqual([]);
  });

  it('deletes a region with an event and a new version', () => {
    store.apply(all);
    clock += 5;
    expect(store.deleteRegion('mnl', { actor: 'bob' })).toEqual({ version: 2, deleted: true });
    expect(store.getConfig()?.regions.map((r) => r.id)).toEqual(['bkk', 'jkt', 'sg']);
    expect(store.listEvents({ limit: 1 })[0]).toMatchObject({
      kind: 'config.deleted',
      subject: 'region:mnl',
      region: 'mnl',
      oldState: 'present',
      newState: 'absent',
      time: clock,
      reason: 'region mnl deleted by bob',
    });
    expect(store.deleteRegion('mnl')).toEqual({ version: 2, deleted: false });
    // Applying it again is a creation.
    expect(store.apply({ regions: [byId('mnl')] })).toEqual({ version: 3, changed: ['region:mnl'] });
  });

  it('refuses to delete a region the zone settings refer to', () => {
    store.apply(all);
    expect(thrownConfigError(() => store.deleteRegion('sg')).message).toContain('zone.defaultRegion: no region "sg"');
    expect(store.getConfig()?.regions).toHaveLength(4);
    expect(store.version()).toBe(1);
    expect(store.listEvents({ limit: 100 })).toHaveLength(5);
  });

  it('lists events newest first with limit, before, kind and region filters', () => {
    store.apply(all);
    store.deleteRegion('bkk');
    const recorded = store.recordEvent({ kind: 'region.down', subject: 'region:jkt', oldState: 'up', newState: 'down', reason: 'no zone up', region: 'jkt', data: { quorum: 2 } });
    expect(recorded).toMatchObject({ id: 7, time: clock, data: { quorum: 2 } });

    const all7 = store.listEvents({ limit: 100 });
    expect(all7.map((e) => e.id)).toEqual([7, 6, 5, 4, 3, 2, 1]);
    expect(store.listEvents({ limit: 2 }).map((e) => e.id)).toEqual([7, 6]);
    expect(store.listEvents({ limit: 2, before: 6 }).map((e) => e.id)).toEqual([5, 4]);
    expect(store.listEvents({ kind: 'config.deleted' }).map((e) => e.subject)).toEqual(['region:bkk']);
    expect(store.listEvents({ region: 'jkt' }).map((e) => e.kind)).toEqual(['region.down', 'config.applied']);
    expect(store.listEvents({ limit: 0 })).toHaveLength(1);
  });

  it('parses documents read back from the database again', () => {
    store.apply(all);
    db.$client.prepare("UPDATE regions SET doc = json_set(doc, '$.location.lat', 123) WHERE id = 'jkt'").run();
    const err = thrownConfigError(() => store.getConfig());
    expect(err.message).toContain('database: region:jkt: location.lat: Too big');
  });

  it('stores documents as canonical JSON text', () => {
    store.apply(all);
    const row = db.$client.prepare("SELECT doc FROM regions WHERE id = 'sg'").get() as { doc: string };
    expect(row.doc).toBe(canonicalJson(byId('sg')));
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: 3 } })).toBe('{"a":{"c":3,"d":[{"y":2,"z":1}]},"b":1}');
  });

  it('seeds an empty database from regions/ once', () => {
    expect(seedIfEmpty(store, regionsDir)).toMatchObject({ version: 1, changed: expect.arrayContaining(['zone-settings', 'region:sg']) });
    expect(store.getConfig()).toEqual({ zone: defaults.zone, regions: sortById(defaults.regions) });
    expect(store.listEvents({ limit: 1 })[0]).toMatchObject({ reason: `seeded from ${regionsDir}`, data: { actor: 'seed' } });

    store.deleteRegion('mnl');
    expect(seedIfEmpty(store, regionsDir)).toBeUndefined();
    expect(store.getConfig()?.regions.map((r) => r.id)).toEqual(['bkk', 'jkt', 'sg']);
  });
});

describe('a database file', () => {
  it('creates its folder, uses WAL, and keeps everything across reopening', () => {
    const file = join(tmp, 'reopen', 'deeper', 'arus.db');
    const first = openDatabase(file);
    expect(first.$client.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(first.$client.pragma('busy_timeout', { simple: true })).toBe(BUSY_TIMEOUT_MS);
    const sg = byId('sg');
    sg.down = true;
    createStore(first, { rules: configRules }).apply({ zone: defaults.zone, regions: [...defaults.regions.filter((r) => r.id !== 'sg'), sg] });
    const events = createStore(first, { rules: configRules }).listEvents({ limit: 100 });
    first.$client.close();
    expect(existsSync(file)).toBe(true);

    const second = openDatabase(file);
    const store = createStore(second, { rules: configRules });
    expect(store.version()).toBe(1);
    expect(store.getConfig()?.regions.find((r) => r.id === 'sg')?.down).toBe(true);
    expect(store.listEvents({ limit: 100 })).toEqual(events);
    expect(seedIfEmpty(store, regionsDir)).toBeUndefined();
    expect(store.apply({ regions: [sg] })).toEqual({ version: 1, changed: [] });
    second.$client.close();
  });

  it('finds its migrations from any working directory', () => {
    const cwd = process.cwd();
    try {
      process.chdir(tmp);
      const db = openDatabase(join('from-elsewhere', 'arus.db'));
      expect(createStore(db, { rules: configRules }).isEmpty()).toBe(true);
      db.$client.close();
      expect(existsSync(join(tmp, 'from-elsewhere', 'arus.db'))).toBe(true);
    } finally {
      process.chdir(cwd);
    }
  });
});
