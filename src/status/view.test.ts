import { describe, expect, it } from 'vitest';
import type { CapacityReport } from '../control/capacity.js';
import type { EndpointHealth } from '../health/types.js';
import { endpointKey, type EndpointHealthInput } from '../snapshot/snapshot.js';
import { shed, snapshotOf } from '../steer/fixtures.js';
import { countrySteering, rankDetail, shedTarget, statusView, type StatusInput } from './view.js';

const down = (...keys: string[]): Map<string, EndpointHealthInput> => new Map(keys.map((k) => [k, { state: 'down', reason: '4 of 4 agents: connect ECONNREFUSED' }]));
const jktDown = down(endpointKey('jkt', 'jkt-a', '203.0.113.21'), endpointKey('jkt', 'jkt-b', '203.0.113.22'));

function input(over: Partial<StatusInput> = {}): StatusInput {
  return { snapshot: snapshotOf(), endpoint: () => undefined, agents: [], overrides: [], capacity: { regions: {}, reports: [] }, latency: {}, now: 1000, ...over };
}

const country = (view: ReturnType<typeof countrySteering>, code: string) => view[0].countries.find((c) => c.code === code)!;

describe('statusView: regions', () => {
  it('gives every region its state, zones, endpoints and reason', () => {
    const v = statusView(input({ snapshot: snapshotOf({ health: down('jkt/jkt-a/203.0.113.21', 'jkt/jkt-a/2001:db8::21') }) }));
    expect(v.regions.map((r) => [r.id, r.state])).toEqual([['sg', 'up'], ['jkt', 'degraded'], ['bkk', 'up'], ['mnl', 'up']]);
    const jkt = v.regions.find((r) => r.id === 'jkt')!;
    expect(jkt.zones.map((z) => [z.id, z.state, z.up, z.total])).toEqual([['jkt-a', 'down', 0, 2], ['jkt-b', 'up', 2, 2]]);
    expect(jkt.reason).toBe('1 of 2 zones down — jkt-a: 4 of 4 agents: connect ECONNREFUSED');
    expect(jkt.zones[0].endpoints[0]).toMatchObject({ address: '203.0.113.21', state: 'down', reason: '4 of 4 agents: connect ECONNREFUSED' });
    expect(v.regions[0].reason).toBe('all 2 zones up');
    expect(v.regions[0]).toMatchObject({ name: 'Singapore', lat: 1.3521, lon: 103.8198, capacity: null });
  });

  it('says why a region is down, with the evidence of each zone', () => {
    const health = down(...['jkt-a/203.0.113.21', 'jkt-a/2001:db8::21', 'jkt-b/203.0.113.22', 'jkt-b/2001:db8::22'].map((k) => `jkt/${k}`));
    const jkt = statusView(input({ snapshot: snapshotOf({ health }) })).regions.find((r) => r.id === 'jkt')!;
    expect(jkt.state).toBe('down');
    expect(jkt.reason).toBe('2 of 2 zones down — jkt-a: 4 of 4 agents: connect ECONNREFUSED; jkt-b: 4 of 4 agents: connect ECONNREFUSED');
  });

  it('counts probe agreement from fresh votes only, and lists the endpoints agents split on', () => {
    const vote = (agent: string, ok: boolean, fresh = true) => ({ agent, region: agent, ok, streak: 1, at: 0, fresh });
    const votes: Record<string, EndpointHealth['votes']> = {
      'sg/sg-a/203.0.113.11': [vote('a', true), vote('b', true), vote('c', false), vote('d', false, false)],
      'sg/sg-b/203.0.113.12': [vote('a', true), vote('b', true), vote('c', true)],
      'bkk/bkk-a/203.0.113.31': [vote('a', true), vote('b', true)],
    };
    const v = statusView(input({ endpoint: (k) => (votes[k] ? { state: 'up', since: 0, evidence: '', votes: votes[k] } : undefined) }));
    const sg = v.regions.find((r) => r.id === 'sg')!;
    expect(sg.probes).toEqual({ agents: 3, unanimous: false, split: [{ endpoint: 'sg/sg-a/203.0.113.11', ok: 2, total: 3 }] });
    expect(sg.zones[0].endpoints[0].probes).toEqual({ ok: 2, total: 3 });
    expect(v.regions.find((r) => r.id === 'bkk')!.probes).toEqual({ agents: 2, unanimous: true, split: [] });
    expect(v.regions.find((r) => r.id === 'mnl')!.probes).toEqual({ agents: 0, unanimous: true, split: [] });
  });

  it("sums a region's balancer reports and carries control's shed decision; overrides are listed where they apply", () => {
    const report = (balancer: string, queueDepth: number): CapacityReport => ({ region: 'jkt', balancer, instances: 2, ready: 2, outstanding: 30, freeConcurrency: 2, queueDepth, at: 500 });
    const v = statusView(
      input({
        capacity: { regions: { jkt: { shed: 0.3, saturation: 0.93, reason: 'queue 12 deep' } }, reports: [report('b1', 5), report('b2', 7)] },
        overrides: [{ subject: 'zone:jkt/jkt-a', mode: 'drain', reason: 'GPU driver upgrade' }, { subject: 'region:jktx', mode: 'drain', reason: 'other region' }],
      }),
    );
    const jkt = v.regions.find((r) => r.id === 'jkt')!;
    expect(jkt.capacity).toEqual({ shed: 0.3, saturation: 0.93, reason: 'queue 12 deep', instances: 4, ready: 4, outstanding: 60, freeConcurrency: 4, queueDepth: 12, reportedAt: 500 });
    expect(jkt.overrides).toEqual([{ subject: 'zone:jkt/jkt-a', mode: 'drain', reason: 'GPU driver upgrade' }]);
  });

  it('is blind when agents exist and none is fresh, and passes the RTT matrix through', () => {
    const agent = (id: string, fresh: boolean) => ({ id, region: id, lastSeen: 0, fresh, results: 1 });
    expect(statusView(input({ agents: [agent('sg', false), agent('jkt', false)] })).blind).toBe(true);
    expect(statusView(input({ agents: [agent('sg', false), agent('jkt', true)] })).blind).toBe(false);
    expect(statusView(input()).blind).toBe(false);
    const rtt = statusView(input({ latency: { sg: { jkt: 12.5, sg: 0.4 }, bkk: { sg: 30 } } })).rtt;
    expect(rtt).toEqual({ from: ['bkk', 'sg'], to: ['sg', 'jkt', 'bkk', 'mnl'], ms: { sg: { jkt: 12.5, sg: 0.4 }, bkk: { sg: 30 } } });
  });
});

describe('countrySteering', () => {
  it.each([
    { name: 'everything up', snapshot: () => snapshotOf(), code: 'ID', region: 'jkt', reason: /^home of ID, \d+ km$/ },
    { name: 'everything up, a country without a home region', snapshot: () => snapshotOf(), code: 'VN', region: 'bkk', reason: /^nearest, \d+ km$/ },
    { name: 'Jakarta down', snapshot: () => snapshotOf({ health: jktDown, marks: { jkt: { noV6: true } } }), code: 'ID', region: 'sg', reason: /^jkt down → next in rank \(\d+ km\)$/ },
    { name: 'Jakarta marked down in config', snapshot: () => snapshotOf({ marks: { jkt: { regionDown: true } } }), code: 'ID', region: 'sg', reason: /^jkt down → next in rank/ },
    { name: 'a failover service', snapshot: () => snapshotOf({ service: { policy: 'failover', regions: ['mnl', 'sg'] } }), code: 'ID', region: 'mnl', reason: /^priority 1$/ },
    { name: 'a weighted service', snapshot: () => snapshotOf({ service: { policy: 'weighted', weights: { sg: 1 } } }), code: 'ID', region: 'sg', reason: /^weighted/ },
  ])('$name: $code → $region', ({ snapshot, code, region, reason }) => {
    const c = country(countrySteering(snapshot()), code);
    expect(c.region).toBe(region);
    expect(c.reason).toMatch(reason);
    expect(c.shed).toBeNull();
  });

  it('fails open when nothing is up, and says so', () => {
    const all = { regionDown: true };
    const c = country(countrySteering(snapshotOf({ marks: { sg: all, jkt: all, bkk: all, mnl: all } })), 'ID');
    expect(c).toMatchObject({ region: 'jkt', reason: expect.stringMatching(/^nothing healthy: failing open/) });
  });

  it("keeps a shedding region's country there and says where the shed share goes", () => {
    const c = country(countrySteering(snapshotOf({ capacity: { jkt: shed(0.3, 0.9) } })), 'ID');
    expect(c.region).toBe('jkt');
    expect(c.shed).toEqual({ share: 0.3, to: 'sg' });
    const none = country(countrySteering(snapshotOf({ capacity: { jkt: shed(0.3), sg: shed(0.5), bkk: shed(0.5), mnl: shed(0.5) } })), 'ID');
    expect(none.shed).toEqual({ share: 0.3, to: null });
  });

  it('lists Southeast Asia and home countries by name, and sums up the rest per region', () => {
    const [api] = countrySteering(snapshotOf());
    expect(api).toMatchObject({ service: 'api', policy: 'geo' });
    expect(api.countries.map((c) => c.code).sort()).toEqual(['BN', 'ID', 'KH', 'LA', 'MM', 'MY', 'PH', 'SG', 'TH', 'TL', 'VN']);
    expect(api.countries.find((c) => c.code === 'ID')!.name).toBe('Indonesia');
    expect(api.countries.map((c) => c.name)).toEqual([...api.countries.map((c) => c.name)].sort((a, b) => a.localeCompare(b, 'en')));
    expect(Object.keys(api.elsewhere).sort()).toEqual(['bkk', 'jkt', 'mnl', 'sg']);
    expect(Object.values(api.elsewhere).reduce((a, b) => a + b, 0) + api.countries.length).toBeGreaterThan(240);
  });

  it('computes once per snapshot', () => {
    const s = snapshotOf();
    expect(countrySteering(s)).toBe(countrySteering(s));
  });
});

describe('trace readers', () => {
  it.each([
    ['rank geo from client at -5.00,120.00: jkt (home of ID, 1462 km) > sg (1931 km)', 'jkt', 'home of ID, 1462 km'],
    ['rank geo from client at -5.00,120.00: jkt (home of ID, 1462 km) > sg (1931 km)', 'sg', '1931 km'],
    ['rank latency from probe region sg: sg (0.4 ms) > jkt (no rtt)', 'jkt', 'no rtt'],
    ['rank failover: mnl (priority 1) > sg (priority 2)', 'sg', 'priority 2'],
    ['rank geo from client at 0,0: jktx (1 km)', 'jkt', undefined],
  ])('rankDetail(%j, %s)', (line, region, detail) => {
    expect(rankDetail(['client x', line, 'pick: …'], region)).toBe(detail);
  });

  it.each([
    ['capacity: jkt shedding 30% (saturation 0.90, test); this client (0.0.0.0/24, hash 0.700) stays; shed clients go to sg', 'sg'],
    ['capacity: jkt shedding 30% (saturation 0.90, test); this client (0.0.0.0/24, hash 0.100) → mnl', 'mnl'],
    ['capacity: jkt shedding 30% (test); this client (0.0.0.0/24, hash 0.100) → bkk (no report: unknown, taken as headroom)', 'bkk'],
    ['capacity: jkt shedding 30% (test); no other region has headroom: nobody moves, this client stays', null],
    ['capacity: jkt has headroom (test)', null],
  ])('shedTarget(%j)', (line, target) => {
    expect(shedTarget([line])).toBe(target);
  });
});
