import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadDocuments } from '../config/load.js';
import { createHealthStore } from '../db/health-store.js';
import { createStore } from '../db/store.js';
import { openDatabase } from '../db/database.js';
import type { AgentInfo, ProbeResult } from '../health/types.js';
import { silentLogger } from '../log.js';
import { steer } from '../steer/steer.js';
import { createControl } from './control.js';
import { configRules } from '../config/rules.js';

const REGIONS = fileURLToPath(new URL('../../regions', import.meta.url));
const AGENTS: AgentInfo[] = ['sg', 'jkt', 'bkk', 'mnl'].map((r) => ({ id: `probe-${r}`, region: r }));

function setUp() {
  let t = 1_000_000;
  const db = openDatabase(':memory:');
  const store = createStore(db, { rules: configRules, now: () => t });
  store.apply(loadDocuments([REGIONS]));
  const healthStore = createHealthStore(db, { now: () => t });
  const control = createControl({ store, healthStore, log: silentLogger(), now: () => t });
  const targets = control.targets().targets.map((x) => x.endpoint);
  /** One probe round: every agent checks every target; `failing(endpoint, agent)` says which fail. */
  const round = (failing: (endpoint: string, agent: AgentInfo) => boolean = () => false) => {
    t += 500;
    for (const agent of AGENTS) {
      const results: ProbeResult[] = targets.map((endpoint) =>
        failing(endpoint, agent) ? { endpoint, ok: false, error: 'connect ECONNREFUSED 127.0.0.1:9211', at: t } : { endpoint, ok: true, rttMs: 2, at: t },
      );
      control.report(agent, results);
    }
  };
  const indonesia = () =>
    steer(
      { service: 'api', family: 4, client: { ip: '36.66.0.0', source: 'ecs', country: 'ID', location: { lat: -5, lon: 120 }, scope: 11, via: 'test' } },
      control.current().snapshot,
      () => 0.5,
    );
  const events = (kind?: string) => store.listEvents({ limit: 1000, kind }).reverse();
  return { control, store, healthStore, round, indonesia, events, advance: (ms: number) => (t += ms), targets };
}

const jkt = (e: string) => e.startsWith('jkt/');
const jktA = (e: string) => e.startsWith('jkt/jkt-a/');

describe('control: health from probe reports to snapshots and history', () => {
  it('starts with every endpoint up (assumed) and Indonesia on jkt', () => {
    const { indonesia, control } = setUp();
    expect(indonesia().region).toBe('jkt');
    expect(control.current().snapshot.regions.flatMap((r) => r.zones.flatMap((z) => z.endpoints)).every((e) => e.health === 'up')).toBe(true);
  });

  it('fails Jakarta over to sg after `fall` rounds, records why and which countries moved, then fails back after `rise`', () => {
    const { round, indonesia, events } = setUp();
    round();
    round(jkt);
    expect(indonesia().region).toBe('jkt'); // one failure is not enough
    round(jkt);
    expect(indonesia().region).toBe('sg');
    const down = events('endpoint.down');
    expect(down.map((e) => e.subject).sort()).toEqual(
      ['jkt/jkt-a/127.0.1.21', 'jkt/jkt-b/127.0.1.22'],
    );
    expect(down[0].reason).toMatch(/4 of 4 agents: connect ECONNREFUSED 127\.0\.0\.1:9211/);
    expect(events('zone.down').map((e) => e.subject).sort()).toEqual(['zone:jkt/jkt-a', 'zone:jkt/jkt-b']);
    expect(events('region.down').map((e) => e.subject)).toEqual(['region:jkt']);
    const [failover] = events('failover');
    expect(failover).toMatchObject({ oldState: 'jkt', newState: 'sg', region: 'jkt' });
    expect((failover.data as { countries: string[] }).countries).toContain('ID');

    for (let i = 0; i < 3; i++) round();
    expect(indonesia().region).toBe('sg'); // rise is 4
    round();
    expect(indonesia().region).toBe('jkt');
    const [failback] = events('failback');
    expect(failback).toMatchObject({ oldState: 'sg', newState: 'jkt', region: 'jkt' });
    expect((failback.data as { countries: string[] }).countries).toContain('ID');
    expect(events('region.up').map((e) => e.subject)).toEqual(['region:jkt']);
  });

  it('calls a move forced by capacity a failover, and the return when the region has headroom again a failback', () => {
    const { control, events, advance } = setUp();
    const report = (outstanding: number) => {
      control.reportCapacity({ region: 'jkt', balancer: 'b', instances: 2, ready: 2, outstanding, freeConcurrency: 32 - outstanding, queueDepth: 0, at: 0 });
      advance(1000);
      control.tick();
    };
    const moved = (kind: string) => events(kind).filter((e) => (e.data as { countries: string[] }).countries.includes('ID'));
    // Saturated (every slot busy): jkt, still up, sheds a share of its clients; Indonesia's representative moves.
    for (let i = 0; i < 5 && moved('failover').length === 0; i++) report(32);
    expect(control.current().snapshot.capacity.jkt.shed).toBeGreaterThan(0);
    expect(moved('failover').map((e) => [e.oldState, e.newState, e.reason])).toEqual([['jkt', 'sg', expect.stringMatching(/\(capacity changed\)$/)]]);
    expect(events('failback')).toEqual([]);
    // Relief: jkt takes them back, a failback.
    for (let i = 0; i < 5 && moved('failback').length === 0; i++) report(0);
    expect(control.current().snapshot.capacity.jkt.shed).toBe(0);
    expect(moved('failback').map((e) => [e.oldState, e.newState])).toEqual([['sg', 'jkt']]);
  });

  it('calls it a failover when clients leave a dead region for one that came back in the same publish', () => {
    const { round, indonesia, events } = setUp();
    const sg = (e: string) => e.startsWith('sg/');
    round(sg);
    round(sg); // sg down (fall 2)
    round();
    round();
    round(jkt);
    round(jkt); // jkt down (fall 2) as sg comes back (rise 4)
    expect(indonesia().region).toBe('sg');
    const moves = events().filter((e) => e.kind === 'failover' || e.kind === 'failback');
    const id = moves.filter((e) => (e.data as { countries: string[] }).countries.includes('ID'));
    expect(id.map((e) => [e.kind, e.oldState, e.newState])).toEqual([['failover', 'jkt', 'sg']]);
  });

  it('calls it a failover when clients leave a region still down for one that came back (after everything was down)', () => {
    const { round, indonesia, events } = setUp();
    const notJkt = (e: string) => !e.startsWith('jkt/');
    round(() => true);
    round(() => true); // everything down: fail-open keeps Indonesia on jkt
    expect(indonesia().region).toBe('jkt');
    for (let i = 0; i < 4; i++) round((e) => !notJkt(e)); // the others come back (rise 4); jkt stays down
    expect(indonesia().region).toBe('sg');
    const id = events().filter((e) => (e.kind === 'failover' || e.kind === 'failback') && (e.data as { countries: string[] }).countries.includes('ID'));
    expect(id.map((e) => [e.kind, e.oldState, e.newState])).toEqual([['failover', 'jkt', 'sg']]);
  });

  it('takes only a dead zone out of the answer, and records the region as degraded', () => {
    const { round, indonesia, events } = setUp();
    round();
    round(jktA);
    round(jktA);
    const d = indonesia();
    expect(d.region).toBe('jkt');
    expect(d.answers.map((a) => a.address)).toEqual(['127.0.1.22']);
    expect(events('region.degraded').map((e) => e.subject)).toEqual(['region:jkt']);
    expect(events('failover')).toEqual([]);
  });

  it('does not fail over when one partitioned agent of four sees failures', () => {
    const { round, indonesia, events } = setUp();
    for (let i = 0; i < 20; i++) round((e, a) => jkt(e) && a.id === 'probe-mnl');
    expect(indonesia().region).toBe('jkt');
    expect(events('endpoint.down')).toEqual([]);
  });

  it('holds the last state and records "fleet blind" when every agent goes silent', () => {
    const { round, indonesia, events, control, advance } = setUp();
    round();
    advance(10_000);
    control.tick();
    expect(events('fleet.blind')).toHaveLength(1);
    expect(indonesia().region).toBe('jkt');
    expect(events('endpoint.down')).toEqual([]);
  });

  it('applies a drain on top of probe health, and records the override', () => {
    const { round, indonesia, healthStore, control, events } = setUp();
    round();
    healthStore.setOverride({ subject: 'region:jkt', mode: 'drain', reason: 'maintenance' });
    control.tick();
    expect(indonesia().region).toBe('sg');
    expect(indonesia().trace.join('\n')).toMatch(/jkt 0\/2/);
    expect(events('failover')[0].reason).toMatch(/admin override/);
    healthStore.clearOverride('region:jkt');
    control.tick();
    expect(indonesia().region).toBe('jkt');
  });

  it('keeps raw results and publishes health for database readers', () => {
    const { round, healthStore } = setUp();
    round();
    round(jkt);
    round(jkt);
    expect(healthStore.recentResults({ endpoint: 'jkt/jkt-a/127.0.1.21', limit: 10 }).length).toBeGreaterThan(0);
    expect(healthStore.loadHealth().get('jkt/jkt-a/127.0.1.21')?.state).toBe('down');
  });
});
