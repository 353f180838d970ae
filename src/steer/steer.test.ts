import { describe, expect, it } from 'vitest';
import { client, clientNets, query, shed, snapshotOf } from './fixtures.js';
import { FAILED_OPEN_TTL, TRANSITION_TTL, seededRandom, steer } from './steer.js';
import type { ClientFacts, SteerQuery } from './types.js';

const allDown = { sg: { regionDown: true }, jkt: { regionDown: true }, bkk: { regionDown: true }, mnl: { regionDown: true } };

describe('steer: the chain', () => {
  it.each([
    { name: 'Indonesian client → jkt', q: { client: client({ country: 'ID' }) }, region: 'jkt', answers: ['203.0.113.21', '203.0.113.22'] },
    { name: 'Singapore client → sg', q: { client: client({ country: 'SG' }) }, region: 'sg', answers: ['203.0.113.11', '203.0.113.12'] },
    { name: 'Thai client → bkk', q: { client: client({ country: 'TH' }) }, region: 'bkk', answers: ['203.0.113.31', '203.0.113.32'] },
    { name: 'Philippine client → mnl', q: { client: client({ country: 'PH' }) }, region: 'mnl', answers: ['203.0.113.41', '203.0.113.42'] },
    { name: 'Malaysian client → sg (nearest)', q: { client: client({ country: 'MY' }) }, region: 'sg' },
    { name: 'Vietnamese client → bkk (nearest)', q: { client: client({ country: 'VN' }) }, region: 'bkk' },
    { name: 'AAAA for a Thai client → bkk IPv6', q: { family: 6 as const, client: client({ country: 'TH' }) }, region: 'bkk', answers: ['2001:db8::31', '2001:db8::32'] },
    { name: 'unknown client → default region', q: { client: client({}) }, region: 'sg' },
    { name: 'unknown client, default mnl → mnl', q: { client: client({}) }, region: 'mnl', opts: { defaultRegion: 'mnl' } },
    { name: 'Indonesia, both jkt zones down → sg', q: { client: client({ country: 'ID' }) }, region: 'sg', opts: { marks: { jkt: { zonesDown: ['jkt-a', 'jkt-b'] } } } },
    { name: 'Indonesia, one jkt zone down → jkt, other zone only', q: { client: client({ country: 'ID' }) }, region: 'jkt', answers: ['203.0.113.22'], opts: { marks: { jkt: { zonesDown: ['jkt-a'] } } } },
    { name: 'pinned bkk for an Indonesian client → bkk', q: { pinnedRegion: 'bkk', client: client({ country: 'ID' }) }, region: 'bkk' },
    { name: 'unknown service → nothing', q: { service: 'nope' }, region: undefined, answers: [] },
  ] as { name: string; q: Partial<SteerQuery>; region?: string; answers?: string[]; opts?: Parameters<typeof snapshotOf>[0] }[])(
    '$name',
    ({ q, region, answers, opts }) => {
      const d = steer(query(q), snapshotOf(opts), seededRandom(7));
      expect(d.region).toBe(region);
      if (answers) expect(d.answers.map((a) => a.address).sort()).toEqual(answers);
      expect(d.failedOpen).toBe(false);
      for (const a of d.answers) expect(a.region).toBe(region);
    },
  );

  it('fails open to the nearest region when nothing is up, with a short TTL and a trace line', () => {
    const d = steer(query({ client: client({ country: 'TH' }) }), snapshotOf({ marks: allDown }), seededRandom(1));
    expect(d.failedOpen).toBe(true);
    expect(d.region).toBe('bkk');
    expect(d.answers).toHaveLength(2);
    expect(d.ttl).toBe(FAILED_OPEN_TTL);
    expect(d.trace.join('\n')).toMatch(/FAILING OPEN/);
  });

  it('answers nothing when nothing is up and the service is fail-closed', () => {
    const d = steer(query({ client: client({ country: 'TH' }) }), snapshotOf({ marks: allDown, service: { failMode: 'closed' } }), seededRandom(1));
    expect(d.answers).toEqual([]);
    expect(d.failedOpen).toBe(false);
  });

  it("uses the service's TTL and the client's scope when location mattered", () => {
    const d = steer(query({ client: client({ country: 'SG', scope: 16 }) }), snapshotOf({ service: { ttl: 42 } }), seededRandom(1));
    expect(d.ttl).toBe(42);
    expect(d.scope).toBe(16);
  });

  it('returns scope 0 when every client gets the same answer (pinned name, single candidate)', () => {
    expect(steer(query({ pinnedRegion: 'sg', client: client({ country: 'SG', scope: 16 }) }), snapshotOf(), seededRandom(1)).scope).toBe(0);
    const onlyMnl = { sg: { regionDown: true }, jkt: { regionDown: true }, bkk: { regionDown: true } };
    expect(steer(query({ client: client({ country: 'SG', scope: 16 }) }), snapshotOf({ marks: onlyMnl }), seededRandom(1)).scope).toBe(0);
  });

  it('is pure: the same inputs give the same decision, and a different seed may reorder only', () => {
    const snap = snapshotOf();
    const q = query({ client: client({ country: 'ID' }) });
    expect(steer(q, snap, seededRandom(5))).toEqual(steer(q, snap, seededRandom(5)));
    const orders = new Set(Array.from({ length: 20 }, (_, s) => steer(q, snap, seededRandom(s)).answers.map((a) => a.address).join()));
    expect(orders.size).toBe(2);
  });

  it('traces every step in order', () => {
    const d = steer(query({ client: client({ country: 'MY', via: 'geoip MY (/13)' }) }), snapshotOf(), seededRandom(1));
    expect(d.trace.map((l) => l.split(/[ :]/)[0])).toEqual(['client', 'eligible', 'up', 'rank', 'capacity', 'pick']);
    expect(d.trace[0]).toContain('geoip MY (/13)');
  });

  it('reads live health: a dead zone leaves the answer, a dead region fails over', () => {
    const down = (addr: string) => [addr, { state: 'down' as const, reason: '4 of 4 agents: connect ECONNREFUSED' }] as const;
    const oneZone = new Map([down('jkt/jkt-a/203.0.113.21')]);
    const d1 = steer(query({ client: client({ country: 'ID' }) }), snapshotOf({ health: oneZone }), seededRandom(1));
    expect(d1.answers.map((a) => a.address)).toEqual(['203.0.113.22']);
    const region = new Map([down('jkt/jkt-a/203.0.113.21'), down('jkt/jkt-b/203.0.113.22')]);
    const d2 = steer(query({ client: client({ country: 'ID' }) }), snapshotOf({ health: region }), seededRandom(1));
    expect(d2.region).toBe('sg');
    expect(d2.trace.join('\n')).toMatch(/jkt 0\/2/);
  });

  it('shortens the TTL while an answered endpoint is in transition', () => {
    const moving = new Map([['sg/sg-a/203.0.113.11', { state: 'up' as const, reason: '2 of 4 agents failing', transition: true }]]);
    const d = steer(query({ client: client({ country: 'SG' }) }), snapshotOf({ health: moving, service: { ttl: 30 } }), seededRandom(1));
    expect(d.ttl).toBe(TRANSITION_TTL);
    const elsewhere = steer(query({ client: client({ country: 'TH' }) }), snapshotOf({ health: moving, service: { ttl: 30 } }), seededRandom(1));
    expect(elsewhere.ttl).toBe(30);
  });

  it('uses the latency chain for a latency service', () => {
    const latency = { bkk: { bkk: 1, mnl: 8, sg: 30, jkt: 40 } };
    const d = steer(query({ client: client({ country: 'VN' }) }), snapshotOf({ latency, service: { policy: 'latency' } }), seededRandom(1));
    expect(d.trace.some((l) => l.startsWith('rank latency from probe region bkk'))).toBe(true);
  });
});

type Opts = NonNullable<Parameters<typeof snapshotOf>[0]>;
const everywhere = ['SG', 'ID', 'TH', 'PH', 'MY', 'VN', 'JP', 'AU', undefined];

describe('steer: failover policy', () => {
  const failover = { policy: 'failover' as const, regions: ['jkt', 'sg', 'bkk'] };
  const down = (...ids: string[]) => Object.fromEntries(ids.map((id) => [id, { regionDown: true }]));

  it.each([
    { name: 'all up → the first priority, for everyone', marks: {}, region: 'jkt', failedOpen: false },
    { name: 'first down → the second', marks: down('jkt'), region: 'sg', failedOpen: false },
    { name: 'first two down → the third', marks: down('jkt', 'sg'), region: 'bkk', failedOpen: false },
    { name: "first's zones both down → the second", marks: { jkt: { zonesDown: ['jkt-a', 'jkt-b'] } }, region: 'sg', failedOpen: false },
    { name: 'every listed region down, unlisted mnl up → fail open to the first priority', marks: down('jkt', 'sg', 'bkk'), region: 'jkt', failedOpen: true },
    { name: 'everything down → fail open to the first priority', marks: allDown, region: 'jkt', failedOpen: true },
    { name: 'everything down, fail-closed → nothing', marks: allDown, region: undefined, failedOpen: false, service: { failMode: 'closed' as const } },
    { name: 'every listed region down, fail-closed → nothing, not mnl', marks: down('jkt', 'sg', 'bkk'), region: undefined, failedOpen: false, service: { failMode: 'closed' as const } },
  ] as { name: string; marks: Opts['marks']; region?: string; failedOpen: boolean; service?: Opts['service'] }[])(
    '$name',
    ({ marks, region, failedOpen, service }) => {
      const snap = snapshotOf({ marks, service: { ...failover, ...service } });
      for (const country of everywhere) {
        const d = steer(query({ client: client({ country, scope: 24 }) }), snap, seededRandom(3));
        expect(d.region, `client ${country}`).toBe(region);
        expect(d.failedOpen).toBe(failedOpen);
        expect(d.scope).toBe(0);
        if (region === undefined) expect(d.answers).toEqual([]);
        if (failedOpen) expect(d.ttl).toBe(FAILED_OPEN_TTL);
      }
    },
  );

  it('answers with scope 0, the service TTL and a trace of the priorities', () => {
    const d = steer(query({ client: client({ country: 'TH', scope: 16 }) }), snapshotOf({ service: { policy: 'failover', regions: ['jkt', 'sg'], ttl: 20 } }), seededRandom(1));
    expect(d.region).toBe('jkt');
    expect(d.scope).toBe(0);
    expect(d.ttl).toBe(20);
    expect(d.trace).toContain('rank failover: jkt (priority 1) > sg (priority 2)');
    expect(d.trace.map((l) => l.split(/[ :]/)[0])).toEqual(['client', 'eligible', 'up', 'rank', 'capacity', 'pick']);
  });

  it('fails over on live health too', () => {
    const health = new Map(['jkt/jkt-a/203.0.113.21', 'jkt/jkt-b/203.0.113.22'].map((k) => [k, { state: 'down' as const, reason: 'probe' }]));
    const d = steer(query({ client: client({ country: 'ID' }) }), snapshotOf({ health, service: failover }), seededRandom(1));
    expect(d.region).toBe('sg');
    expect(d.trace.join('\n')).toMatch(/rank failover: sg \(priority 2\) > bkk \(priority 3\); passed over: jkt \(priority 1\)/);
  });

  it('serves a pinned name only for a listed region', () => {
    const snap = snapshotOf({ service: failover });
    expect(steer(query({ pinnedRegion: 'bkk' }), snap, seededRandom(1)).region).toBe('bkk');
    expect(steer(query({ pinnedRegion: 'mnl' }), snap, seededRandom(1)).answers).toEqual([]);
  });
});

describe('steer: weighted policy', () => {
  const weighted = { policy: 'weighted' as const, weights: { sg: 70, jkt: 30 } };

  /** Share of answers per region over many seeded variants, as the DNS layer rotates them. */
  function shares(opts: Opts, runs = 5000) {
    const snap = snapshotOf(opts);
    const counts: Record<string, number> = {};
    for (let seed = 0; seed < runs; seed++) {
      const d = steer(query({ client: client({ country: everywhere[seed % everywhere.length], scope: 24 }) }), snap, seededRandom(seed));
      expect(d.scope).toBe(0);
      const key = d.region ?? 'none';
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return Object.fromEntries(Object.entries(counts).map(([id, n]) => [id, n / runs]));
  }

  it.each([
    { name: '70/30 across clients everywhere', opts: { service: weighted }, want: { sg: 0.7, jkt: 0.3 } },
    { name: 'three regions 50/30/20', opts: { service: { policy: 'weighted' as const, weights: { sg: 50, jkt: 30, bkk: 20 } } }, want: { sg: 0.5, jkt: 0.3, bkk: 0.2 } },
    { name: 'sg down → all to jkt, never to weight-0 regions', opts: { service: weighted, marks: { sg: { regionDown: true } } }, want: { jkt: 1 } },
    { name: 'sg and jkt down → the weight-0 regions as a last resort', opts: { service: weighted, marks: { sg: { regionDown: true }, jkt: { regionDown: true } } }, want: { bkk: 0.5, mnl: 0.5 } },
    { name: 'regions limit who serves: unlisted mnl never does', opts: { service: { ...weighted, regions: ['sg', 'jkt', 'bkk'] }, marks: { sg: { regionDown: true }, jkt: { regionDown: true } } }, want: { bkk: 1 } },
    { name: 'everything down → fail open, still by weight', opts: { service: weighted, marks: allDown }, want: { sg: 0.7, jkt: 0.3 } },
    { name: 'everything down, fail-closed → nothing', opts: { service: { ...weighted, failMode: 'closed' as const }, marks: allDown }, want: { none: 1 } },
  ] as { name: string; opts: Opts; want: Record<string, number> }[])('$name', ({ opts, want }) => {
    const got = shares(opts);
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    for (const [id, share] of Object.entries(want)) expect(Math.abs(got[id] - share), `${id}: ${got[id]} vs ${share}`).toBeLessThan(0.03);
  });

  it('gives every client the same answer for the same variant, with scope 0', () => {
    const snap = snapshotOf({ service: weighted });
    for (let seed = 0; seed < 50; seed++) {
      const answers = new Set(
        everywhere.map((country) => JSON.stringify(steer(query({ client: client({ country, scope: 20 }) }), snap, seededRandom(seed)).answers)),
      );
      expect(answers.size).toBe(1);
    }
  });

  it('flags fail-open and caps the TTL', () => {
    const d = steer(query(), snapshotOf({ service: weighted, marks: allDown }), seededRandom(1));
    expect(d.failedOpen).toBe(true);
    expect(d.ttl).toBe(FAILED_OPEN_TTL);
  });

  it('traces the weights and the draw', () => {
    const d = steer(query({ client: client({ country: 'TH' }) }), snapshotOf({ service: weighted }), seededRandom(1));
    expect(d.trace.map((l) => l.split(/[ :]/)[0])).toEqual(['client', 'eligible', 'up', 'rank', 'pick']);
    expect(d.trace[3]).toMatch(/^rank weighted: sg w70 \(70%\), jkt w30 \(30%\), bkk w0, mnl w0; draw \d+\.\d of 100 → (sg|jkt); order /);
  });
});

describe('steer: capacity', () => {
  const indonesia = clientNets(2000, { country: 'ID', scope: 16 });
  const jktBusy = { jkt: shed(0.3, 0.92, '4/4 GPUs busy') };

  /** Decisions for every client, and the share of them per region. */
  function decide(opts: Opts, clients: ClientFacts[] = indonesia, q: Partial<SteerQuery> = {}) {
    const snap = snapshotOf(opts);
    const decisions = clients.map((c) => steer(query({ ...q, client: c }), snap, seededRandom(1)));
    const counts: Record<string, number> = {};
    for (const d of decisions) counts[d.region ?? 'none'] = (counts[d.region ?? 'none'] ?? 0) + 1;
    const share = Object.fromEntries(Object.entries(counts).map(([id, n]) => [id, n / clients.length]));
    return { decisions, share };
  }

  it.each([
    { name: 'no capacity data → everyone on jkt, client scope, service TTL', opts: {}, want: { jkt: 1 }, scope: 16, ttl: 30 },
    { name: 'jkt reports headroom → unchanged', opts: { capacity: { jkt: shed(0, 0.5) } }, want: { jkt: 1 }, scope: 16, ttl: 30 },
    { name: 'jkt sheds 30% → ≈30% to sg, scope /24, short TTL', opts: { capacity: jktBusy }, want: { jkt: 0.7, sg: 0.3 }, scope: 24, ttl: TRANSITION_TTL },
    { name: 'jkt and sg shed → the share goes to mnl (next with headroom)', opts: { capacity: { ...jktBusy, sg: shed(0.1) } }, want: { jkt: 0.7, mnl: 0.3 }, scope: 24, ttl: TRANSITION_TTL },
    { name: 'jkt sheds, every other region sheds → nobody moves, scope kept, short TTL', opts: { capacity: { ...jktBusy, sg: shed(0.1), bkk: shed(0.2), mnl: shed(0.9) } }, want: { jkt: 1 }, scope: 16, ttl: TRANSITION_TTL },
    { name: 'jkt sheds 100% → everyone with a target moves, scope kept', opts: { capacity: { jkt: shed(1) } }, want: { sg: 1 }, scope: 16, ttl: TRANSITION_TTL },
    { name: 'jkt down, sg (next) sheds 30% → the share goes on to mnl', opts: { marks: { jkt: { regionDown: true } }, capacity: { sg: shed(0.3) } }, want: { sg: 0.7, mnl: 0.3 }, scope: 24, ttl: TRANSITION_TTL },
    { name: 'everything down: failing open ignores capacity', opts: { marks: allDown, capacity: { jkt: shed(1) } }, want: { jkt: 1 }, scope: 16, ttl: FAILED_OPEN_TTL },
  ] as { name: string; opts: Opts; want: Record<string, number>; scope: number; ttl: number }[])('geo: $name', ({ opts, want, scope, ttl }) => {
    const { decisions, share } = decide({ ...opts, service: { ttl: 30, ...opts.service } });
    expect(Object.keys(share).sort()).toEqual(Object.keys(want).sort());
    for (const [id, w] of Object.entries(want)) expect(Math.abs(share[id] - w), `${id}: ${share[id]}`).toBeLessThan(0.05);
    for (const d of decisions) {
      expect(d.scope).toBe(scope);
      expect(d.ttl).toBe(ttl);
    }
  });

  it('lands each client network the same way on every query and every DNS variant', () => {
    const snap = snapshotOf({ capacity: jktBusy });
    for (const c of indonesia.slice(0, 300)) {
      const regions = new Set([1, 2, 3].map((seed) => steer(query({ client: { ...c, ip: c.ip.replace(/0$/, String(seed * 60)) } }), snap, seededRandom(seed)).region));
      expect(regions.size).toBe(1);
    }
  });

  it('never widens the scope past a narrower client network, and uses /56 for IPv6 clients', () => {
    const narrow = decide({ capacity: jktBusy }, clientNets(50, { country: 'ID', scope: 28 })).decisions;
    for (const d of narrow) expect(d.scope).toBe(28);
    const v6 = Array.from({ length: 50 }, (_, i) => client({ country: 'ID', ip: `2001:db8:${i.toString(16)}::`, scope: 32 }));
    for (const d of decide({ capacity: jktBusy }, v6).decisions) expect(d.scope).toBe(56);
  });

  it('does not lengthen a TTL shorter than the cap', () => {
    for (const d of decide({ capacity: jktBusy, service: { ttl: 3 } }).decisions) expect(d.ttl).toBe(3);
  });

  it('traces the split, the TTL and the scope', () => {
    const { decisions } = decide({ capacity: { ...jktBusy, sg: shed(0, 0.4, '1/4 GPUs busy') }, service: { ttl: 30 } }, indonesia.slice(0, 40));
    const moved = decisions.find((d) => d.region === 'sg')!;
    const stayed = decisions.find((d) => d.region === 'jkt')!;
    expect(moved.trace.map((l) => l.split(/[ :]/)[0])).toEqual(['client', 'eligible', 'up', 'rank', 'capacity', 'pick', 'ttl', 'scope']);
    expect(moved.trace[4]).toMatch(/^capacity: jkt shedding 30% \(saturation 0\.92, 4\/4 GPUs busy\); this client \(10\.0\.\d+\.0\/24, hash 0\.\d{3}\) → sg$/);
    expect(stayed.trace[4]).toMatch(/^capacity: jkt shedding 30% .*\) stays; shed clients go to sg$/);
    expect(moved.trace).toContain(`ttl ${TRANSITION_TTL} (jkt is shedding load, capped at ${TRANSITION_TTL})`);
    expect(moved.trace).toContain('scope /24 (capacity splits clients by /24 network; location alone: /16)');
  });

  it('sheds on the latency chain too', () => {
    const latency = { jkt: { jkt: 2, sg: 12, bkk: 30, mnl: 40 } };
    const { share, decisions } = decide({ latency, service: { policy: 'latency' }, capacity: jktBusy });
    expect(Math.abs(share.sg - 0.3)).toBeLessThan(0.05);
    expect(share.jkt + share.sg).toBeCloseTo(1);
    for (const d of decisions) expect(d.scope).toBe(24);
  });

  it('sheds on the failover chain: the next priority takes the share, answered per /24 instead of to everyone', () => {
    const failover = { policy: 'failover' as const, regions: ['jkt', 'sg', 'bkk'] };
    const worldwide = clientNets(2000, { scope: 24 }).map((c, i) => ({ ...c, country: everywhere[i % everywhere.length] }));
    const calm = decide({ service: failover }, worldwide);
    expect(calm.share).toEqual({ jkt: 1 });
    for (const d of calm.decisions) expect(d.scope).toBe(0);
    const busy = decide({ service: failover, capacity: jktBusy }, worldwide);
    expect(Math.abs(busy.share.sg - 0.3)).toBeLessThan(0.05);
    expect(busy.share.jkt + busy.share.sg).toBeCloseTo(1);
    for (const d of busy.decisions) expect(d.scope).toBe(24);
  });

  it('leaves the weighted chain alone: the weights already share the load', () => {
    const weighted = { policy: 'weighted' as const, weights: { sg: 70, jkt: 30 } };
    const snap = snapshotOf({ service: weighted, capacity: { sg: shed(1), jkt: shed(1) } });
    const d = steer(query({ client: client({ country: 'ID' }) }), snap, seededRandom(1));
    expect(d.trace.some((l) => l.startsWith('capacity'))).toBe(false);
    expect(d.scope).toBe(0);
  });

  it('answers a pinned name from its region, shedding or not, with scope 0', () => {
    const { share, decisions } = decide({ capacity: { jkt: shed(0.5) } }, indonesia.slice(0, 200), { pinnedRegion: 'jkt' });
    expect(share).toEqual({ jkt: 1 });
    for (const d of decisions) expect(d.scope).toBe(0);
  });
});
