// Control under faults, with injected clocks: a database that refuses writes,
// the wall clock jumping, agents with wrong clocks, and a flood of reports.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadDocuments } from '../config/load.js';
import { createHealthStore } from '../db/health-store.js';
import { createStore } from '../db/store.js';
import { openDatabase } from '../db/database.js';
import type { AgentInfo, ProbeResult } from '../health/types.js';
import { silentLogger } from '../log.js';
import { createControl, ReportRefused } from './control.js';
import { configRules } from '../config/rules.js';

const REGIONS = fileURLToPath(new URL('../../regions', import.meta.url));
const AGENTS: AgentInfo[] = ['sg', 'jkt', 'bkk', 'mnl'].map((r) => ({ id: `probe-${r}`, region: r }));
const HOUR = 3_600_000;

function setUp(opts: { reportsPerSecond?: number; reportBurst?: number; maxAgents?: number } = {}) {
  let wall = 1_700_000_000_000;
  let mono = wall;
  const db = openDatabase(':memory:');
  const store = createStore(db, { rules: configRules, now: () => wall });
  store.apply(loadDocuments([REGIONS]));
  const healthStore = createHealthStore(db, { now: () => wall });
  const control = createControl({
    store, healthStore, log: silentLogger(), now: () => wall, monotonic: () => mono,
    reportsPerSecond: opts.reportsPerSecond ?? 1000, reportBurst: opts.reportBurst ?? 1000, tracker: { maxAgents: opts.maxAgents },
  });
  const targets = control.targets().targets.map((x) => x.endpoint);
  /** Time passes on both clocks. */
  const pass = (ms: number) => ((wall += ms), (mono += ms));
  /** One probe round; `skew` is each agent's clock error. */
  const round = (failing: (endpoint: string) => boolean = () => false, skew = 0, agents = AGENTS) => {
    pass(500);
    for (const agent of agents)
      control.report(agent, targets.map((endpoint): ProbeResult => (failing(endpoint) ? { endpoint, ok: false, error: 'refused', at: wall + skew } : { endpoint, ok: true, rttMs: 2, at: wall + skew })));
    control.tick();
  };
  const regionOf = (id: string) => control.current().snapshot.regions.find((r) => r.id === id)!;
  const up = (id: string) => regionOf(id).zones.flatMap((z) => z.endpoints).filter((e) => e.health === 'up').length;
  const events = (kind?: string) => store.listEvents({ limit: 1000, kind }).reverse();
  return { db, store, healthStore, control, round, pass, up, events, jumpWall: (ms: number) => (wall += ms), targets };
}
const jkt = (e: string) => e.startsWith('jkt/');

describe('control on a database that refuses writes', () => {
  it('keeps taking probe reports and publishing health in memory, keeps the events, and writes them when it can again', async () => {
    const { db, store, control, round, up, events } = setUp();
    for (let i = 0; i < 5; i++) round();
    const eventsBefore = events().length;
    db.$client.pragma('query_only = ON');
    round(jkt);
    round(jkt);
    expect(up('jkt')).toBe(0); // DNS follows health: the snapshot in memory moved
    const stats = control.stats().storage;
    expect(stats.failing).toMatchObject({ kind: 'read-only' });
    expect(stats.healthUnsaved).toBe(true);
    expect(stats.pendingEvents).toBeGreaterThan(0);
    expect(events().length).toBe(eventsBefore);
    const version = control.current().snapshot.version;

    db.$client.pragma('query_only = OFF');
    // The back-off is on the real monotonic clock.
    await expect.poll(() => store.guard.retryDue(), { timeout: 15_000, interval: 50 }).toBe(true);
    control.tick();
    expect(control.stats().storage).toMatchObject({ pendingEvents: 0, healthUnsaved: false });
    expect(control.stats().storage.failing).toBeUndefined();
    const kinds = events().slice(eventsBefore).map((e) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(['storage.failed', 'endpoint.down', 'region.down', 'failover', 'storage.recovered']));
    expect(kinds.indexOf('storage.failed')).toBeLessThan(kinds.indexOf('endpoint.down'));
    // The version never goes back: what is written catches up with what was served.
    round();
    expect(control.current().snapshot.version).toBeGreaterThan(version);
  });
});

describe('control when the wall clock jumps', () => {
  it.each([['forward', HOUR], ['back', -HOUR]])('an hour %s: no agent goes silent, no failover, no blind fleet', (_label, jump) => {
    const { round, jumpWall, events, up } = setUp();
    for (let i = 0; i < 6; i++) round();
    const before = events().length;
    jumpWall(jump);
    for (let i = 0; i < 6; i++) round();
    const after = events().slice(before).map((e) => e.kind);
    expect(after.filter((k) => /silent|blind|failover|down|returned/.test(k))).toEqual([]);
    expect(up('jkt')).toBeGreaterThan(0);
  });

  it('after a jump back, silent agents still go silent and failures still fail over (durations on the monotonic clock)', () => {
    const { round, jumpWall, events, up } = setUp();
    for (let i = 0; i < 6; i++) round();
    jumpWall(-HOUR);
    for (let i = 0; i < 8; i++) round(undefined, 0, AGENTS.slice(1)); // probe-sg stops reporting
    expect(events('agent.silent').map((e) => e.subject)).toEqual(['probe-sg']);
    round(jkt);
    round(jkt);
    expect(up('jkt')).toBe(0);
    expect(events('failover').length).toBeGreaterThan(0);
  });

  it('judges agents with clocks an hour off by their own sequence, and stores their results at receipt time', () => {
    const { round, healthStore, up, events } = setUp();
    const now = Date.now();
    for (let i = 0; i < 4; i++) round(undefined, HOUR);
    round(jkt, HOUR);
    round(jkt, HOUR);
    expect(up('jkt')).toBe(0);
    const stored = healthStore.recentResults({ limit: 10 });
    const newest = events().at(-1)!.time;
    for (const r of stored) expect(r.time).toBeLessThanOrEqual(newest + 1);
    expect(now).toBeGreaterThan(0);
  });

  it('takes results again from an agent restarted with its clock stepped back an hour', () => {
    const { control, round, up, targets, pass } = setUp();
    for (let i = 0; i < 4; i++) round(undefined, HOUR);
    // The agents restart with the right clock: an hour behind what they sent.
    for (let i = 0; i < 4; i++) round(jkt);
    expect(up('jkt')).toBe(0);
    pass(0);
    expect(control.tracker().endpoint(targets.find(jkt)!)!.votes.every((v) => !v.ok)).toBe(true);
  });
});

describe('control under a flood of probe reports', () => {
  it('refuses an agent over its rate with a Retry-After, and records it once', () => {
    const { control, targets, pass, events } = setUp({ reportsPerSecond: 10, reportBurst: 20 });
    const report = () => control.report(AGENTS[0], [{ endpoint: targets[0], ok: true, rttMs: 1, at: 1 }]);
    let refused: ReportRefused | undefined;
    let taken = 0;
    for (let i = 0; i < 100; i++) {
      try {
        report();
        taken++;
      } catch (err) {
        refused = err as ReportRefused;
      }
    }
    expect(taken).toBe(20);
    expect(refused).toBeInstanceOf(ReportRefused);
    expect(refused!.retryAfterS).toBe(1);
    expect(control.stats().probes.refused.rate).toBe(80);
    expect(events('probe.limited')).toHaveLength(1);
    pass(1000);
    for (let i = 0; i < 10; i++) report();
    expect(() => report()).toThrow(ReportRefused);
  });

  it('tracks at most maxAgents: a new one replaces a silent one, and is refused while all are live', () => {
    const { control, targets, pass, events } = setUp({ maxAgents: 3 });
    const send = (id: string) => control.report({ id, region: 'sg' }, [{ endpoint: targets[0], ok: true, rttMs: 1, at: Date.now() }]);
    for (const id of ['a', 'b', 'c']) send(id);
    expect(() => send('d')).toThrow(/too many probe agents/);
    expect(control.stats().probes.refused.agents).toBe(1);
    pass(5000);
    send('a');
    send('b');
    send('d'); // c has been silent longest
    expect(control.tracker().agents().map((a) => a.id).sort()).toEqual(['a', 'b', 'd']);
    expect(events('agent.forgotten').map((e) => e.subject)).toEqual(['c']);
  });

  it('keeps no memory or rows for endpoints it does not know', () => {
    const { control, healthStore } = setUp();
    control.report(AGENTS[0], Array.from({ length: 1000 }, (_, i) => ({ endpoint: `xx/yy/10.0.${i >> 8}.${i & 255}`, ok: true, rttMs: 1, at: i + 1 })));
    expect(healthStore.recentResults({ limit: 1000 })).toHaveLength(0);
    expect(control.stats().probes.resultsNotStored).toBe(1000);
    expect(Object.keys(control.latency())).toEqual([]);
  });
});
