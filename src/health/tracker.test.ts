import { describe, expect, it } from 'vitest';
import { all, EP, fleet, INTERVAL, kinds, REFUSED } from './harness.js';
import { createHealthTracker, HEALTH_DEFAULTS } from './tracker.js';

const EP2 = 'jkt/jkt-b/127.0.1.22';

describe('defaults and the state before any result', () => {
  it('defaults to fall 2, rise 4, 3 s staleness, initially up', () => {
    expect(HEALTH_DEFAULTS).toEqual({ fall: 2, rise: 4, staleMs: 3000, initial: 'up', settleMs: 1000, maxAgents: 256, replayWindowMs: 60_000 });
  });

  it('assumes up until the first result, and says so', () => {
    const tr = createHealthTracker({ now: 1000 });
    tr.setEndpoints([EP], 1000);
    expect(tr.endpoint(EP)).toEqual({ state: 'up', since: 1000, evidence: 'no probe results yet: assumed up', votes: [] });
  });

  it('can be told to start down', () => {
    const tr = createHealthTracker({ now: 0, initial: 'down' });
    tr.setEndpoints([EP], 0);
    expect(tr.endpoint(EP)).toMatchObject({ state: 'down', evidence: 'no probe results yet: assumed down' });
    const f = fleet(4, { initial: 'down' });
    for (let i = 1; i <= 3; i++) f.round(all(4, true));
    expect(f.state()).toBe('down');
    f.round(all(4, true));
    expect(f.state()).toBe('up');
  });

  it.each([
    { opt: { fall: 0 } },
    { opt: { rise: 1.5 } },
    { opt: { staleMs: 0 } },
    { opt: { fall: Number.NaN } },
    { opt: { settleMs: -1 } },
  ])('rejects $opt', ({ opt }) => {
    expect(() => createHealthTracker({ now: 0, ...opt })).toThrow(RangeError);
  });
});

describe('configured endpoints', () => {
  it('adds in the initial state, forgets removed ones, and ignores results for unknown endpoints', () => {
    const f = fleet(1, { fall: 1 });
    const g0 = f.tracker.generation();
    f.tracker.setEndpoints([EP, EP2], 100);
    expect(f.tracker.generation()).toBe(g0 + 1);
    expect(f.tracker.endpoint(EP2)).toMatchObject({ state: 'up', since: 100 });
    f.round([false], [EP, EP2, 'sg/sg-a/10.0.0.1']);
    expect(f.state(EP)).toBe('down');
    expect(f.tracker.endpoint('sg/sg-a/10.0.0.1')).toBeUndefined();
    expect(f.tracker.agents()[0].results).toBe(2);

    f.tracker.setEndpoints([EP2], f.t);
    expect(f.tracker.endpoint(EP)).toBeUndefined();
    expect([...f.tracker.all().keys()]).toEqual([EP2]);
    f.tracker.setEndpoints([EP2, EP], f.t);
    expect(f.tracker.endpoint(EP)).toMatchObject({ state: 'up', votes: [], evidence: 'no probe results yet: assumed up' });

    const g = f.tracker.generation();
    f.tracker.setEndpoints([EP, EP2], f.t);
    expect(f.tracker.generation()).toBe(g);
  });
});

describe('fall and rise thresholds (one agent)', () => {
  it.each([
    { fall: 1, rise: 1 },
    { fall: 2, rise: 4 },
    { fall: 3, rise: 5 },
  ])('down after exactly $fall failures, up after exactly $rise successes', ({ fall, rise }) => {
    const f = fleet(1, { fall, rise });
    for (let i = 1; i < fall; i++) {
      expect(kinds(f.round([false]))).toEqual(i === 1 ? ['agent.joined'] : []);
      expect(f.state()).toBe('up');
    }
    const down = f.round([false]).filter((e) => e.kind === 'endpoint.down');
    expect(down).toEqual([
      { kind: 'endpoint.down', subject: EP, oldState: 'up', newState: 'down', reason: `1 of 1 agents: ${REFUSED}`, at: f.t, region: 'jkt' },
    ]);
    expect(f.tracker.endpoint(EP)?.since).toBe(f.t);
    for (let i = 1; i < rise; i++) {
      f.round([true]);
      expect(f.state()).toBe('down');
    }
    expect(kinds(f.round([true]))).toEqual(['endpoint.up']);
    expect(f.state()).toBe('up');
  });

  it('a success in between restarts the failure streak', () => {
    const f = fleet(1, { fall: 3 });
    for (const ok of [false, false, true, false, false, true, false, false]) f.round([ok]);
    expect(f.state()).toBe('up');
    f.round([false]);
    expect(f.state()).toBe('down');
  });
});

describe('quorum: a strict majority of the fresh agents that vote', () => {
  // Agents 0..failing-1 fail, the rest succeed, for long enough to pass any threshold.
  it.each([
    { agents: 4, failing: 1, down: false },
    { agents: 4, failing: 2, down: false },
    { agents: 4, failing: 3, down: true },
    { agents: 4, failing: 4, down: true },
    { agents: 3, failing: 1, down: false },
    { agents: 3, failing: 2, down: true },
    { agents: 2, failing: 1, down: false },
    { agents: 2, failing: 2, down: true },
    { agents: 1, failing: 1, down: true },
    { agents: 5, failing: 2, down: false },
    { agents: 5, failing: 3, down: true },
  ])('$failing of $agents failing → down: $down', ({ agents, failing, down }) => {
    const f = fleet(agents);
    const outcomes = Array.from({ length: agents }, (_, i) => i >= failing);
    for (let i = 0; i < 20; i++) f.round(outcomes);
    expect(f.state()).toBe(down ? 'down' : 'up');
    expect(f.events.filter((e) => e.kind.startsWith('endpoint.')).length).toBe(down ? 1 : 0);
  });

  it.each([
    { agents: 4, passing: 2, up: false },
    { agents: 4, passing: 3, up: true },
    { agents: 3, passing: 2, up: true },
  ])('recovery: $passing of $agents passing → up: $up', ({ agents, passing, up }) => {
    const f = fleet(agents);
    for (let i = 0; i < 5; i++) f.round(all(agents, false));
    expect(f.state()).toBe('down');
    const outcomes = Array.from({ length: agents }, (_, i) => i < passing);
    for (let i = 0; i < 20; i++) f.round(outcomes);
    expect(f.state()).toBe(up ? 'up' : 'down');
  });

  it('one agent of four partitioned from a healthy region, for a minute: no failover, and the evidence shows it', () => {
    const f = fleet(4);
    for (let i = 0; i < 120; i++) f.round([false, true, true, true]);
    expect(f.state()).toBe('up');
    expect(f.tracker.endpoint(EP)?.transition).toBeUndefined();
    expect(f.tracker.endpoint(EP)?.evidence).toBe(`3 of 4 agents: ok (rtt 1.2 ms median); 1 of 4 agents: ${REFUSED}`);
    expect(kinds(f.events).filter((k) => k.startsWith('endpoint.'))).toEqual([]);
  });

  it('needs the streaks to overlap: staggered single failures never make a quorum', () => {
    const f = fleet(4, { fall: 2 });
    // Each agent fails twice in a row, but never three agents at once.
    const pattern = [
      [false, true, true, true],
      [false, false, true, true],
      [true, false, false, true],
      [true, true, false, false],
      [false, true, true, false],
    ];
    for (let i = 0; i < 24; i++) f.round(pattern[i % pattern.length]);
    expect(f.state()).toBe('up');
  });
});

describe('who votes', () => {
  it('after a control restart, the first agent to reconnect cannot decide alone', () => {
    // Control starts at 0; a partitioned agent reconnects first with a buffer of failures.
    const tr = createHealthTracker({ now: 0 });
    tr.setEndpoints([EP], 0);
    const events = [];
    const backlog = (ok: boolean, until: number) =>
      Array.from({ length: 6 }, (_, i) => ({ endpoint: EP, ok, error: ok ? undefined : REFUSED, rttMs: ok ? 1 : undefined, at: until - (5 - i) * INTERVAL }));
    events.push(...tr.ingest({ id: 'probe-sg', region: 'sg' }, backlog(false, 100), 100));
    expect(tr.endpoint(EP)).toMatchObject({ state: 'up', transition: 'falling', evidence: `1 of 1 agents: ${REFUSED}` });
    for (const [i, id] of ['probe-jkt', 'probe-bkk', 'probe-mnl'].entries()) {
      events.push(...tr.ingest({ id, region: id.slice(6) }, backlog(true, 300 + i * 100), 300 + i * 100));
    }
    for (let t = 1000; t <= 5000; t += INTERVAL) {
      for (const [i, id] of ['probe-sg', 'probe-jkt', 'probe-bkk', 'probe-mnl'].entries()) {
        events.push(...tr.ingest({ id, region: id.slice(6) }, [{ endpoint: EP, ok: i > 0, rttMs: i > 0 ? 1 : undefined, at: t }], t));
      }
      events.push(...tr.tick(t));
    }
    expect(kinds(events).filter((k) => k.startsWith('endpoint.'))).toEqual([]);
    expect(tr.endpoint(EP)?.evidence).toBe('3 of 4 agents: ok (rtt 1.0 ms median); 1 of 4 agents: failed');
  });

  it('holds for settleMs after start, then a real outage flips at once', () => {
    const f = fleet(4, { settleMs: 2000 });
    for (let i = 0; i < 3; i++) f.round(all(4, false)); // t = 1500
    expect(f.tracker.endpoint(EP)).toMatchObject({ state: 'up', transition: 'falling' });
    f.round(all(4, false)); // t = 2000
    expect(f.state()).toBe('down');
  });

  it('a new endpoint is decided by the whole live fleet, not by the first agent to probe it', () => {
    const f = fleet(4, { fall: 2 });
    for (let i = 0; i < 4; i++) f.round(all(4, true));
    f.tracker.setEndpoints([EP, EP2], f.t);
    // Only one agent has the new target so far, and it sees failures; the others still probe the old list.
    for (let i = 0; i < 6; i++) {
      f.t += INTERVAL;
      f.agents.forEach((agent, a) => {
        const results = a === 0 ? [{ endpoint: EP2, ok: false, error: REFUSED, at: f.t }] : [{ endpoint: EP, ok: true, at: f.t }];
        f.events.push(...f.tracker.ingest(agent, results, f.t));
      });
    }
    expect(f.state(EP2)).toBe('up');
    expect(f.tracker.endpoint(EP2)?.evidence).toBe(`1 of 4 agents: ${REFUSED}; 3 of 4 agents: no recent result`);
    // Once most of the fleet probes it and agrees, it goes down.
    for (let i = 0; i < 2; i++) f.round([false, false, false, true], [EP2]);
    expect(f.state(EP2)).toBe('down');
  });
});

describe('staleness', () => {
  it('stale agents lose their vote: two fresh failing agents out of two decide', () => {
    const f = fleet(4);
    for (let i = 0; i < 4; i++) f.round([false, false, true, true]);
    expect(f.state()).toBe('up');
    // The two agents that saw success go silent; the failures are now 2 of 2 fresh votes.
    const events = [];
    for (let i = 0; i < 6; i++) events.push(...f.round([false, false, null, null]));
    expect(f.state()).toBe('up'); // 3 s: not yet stale
    events.push(...f.round([false, false, null, null]));
    expect(kinds(events)).toEqual(['agent.silent', 'agent.silent', 'endpoint.down']);
    expect(events[2].reason).toBe(`2 of 2 agents: ${REFUSED}`);
    const h = f.tracker.endpoint(EP)!;
    expect(h.votes.map((v) => [v.agent, v.fresh])).toEqual([
      ['probe-sg', true],
      ['probe-jkt', true],
      ['probe-bkk', false],
      ['probe-mnl', false],
    ]);
    expect(f.tracker.agents().map((a) => a.fresh)).toEqual([true, true, false, false]);
  });

  it('stale failures do not hold an endpoint down', () => {
    const f = fleet(4);
    for (let i = 0; i < 4; i++) f.round(all(4, false));
    expect(f.state()).toBe('down');
    for (let i = 0; i < 12; i++) f.round([null, null, true, true]);
    expect(f.state()).toBe('up');
  });

  it('silence alone never fails over: an endpoint whose only votes went stale keeps its state', () => {
    const f = fleet(4, {}, [EP, EP2]);
    f.round(all(4, false), [EP]); // one failure each: falling, not down
    f.round(all(4, true), [EP2]);
    expect(f.tracker.endpoint(EP)).toMatchObject({ state: 'up', transition: 'falling' });
    // Another agent keeps reporting, but it does not vote on these endpoints.
    for (let i = 0; i < 20; i++) {
      f.t += INTERVAL;
      f.tracker.ingest({ id: 'probe-other', region: 'sg' }, [], f.t);
      f.events.push(...f.tracker.tick(f.t));
    }
    expect(f.tracker.endpoint(EP)).toMatchObject({ state: 'up', transition: 'falling' });
    expect(f.tracker.endpoint(EP)?.evidence).toBe(`holding up: no fresh probe results (last: 4 of 5 agents: ${REFUSED}; 1 of 5 agents: no recent result)`);
    expect(f.tracker.endpoint(EP)?.votes.every((v) => !v.fresh)).toBe(true);
    expect(kinds(f.events).filter((k) => k.startsWith('endpoint.') || k.startsWith('fleet.'))).toEqual([]);
  });

  it('a gap longer than the window breaks a streak', () => {
    const f = fleet(1, { fall: 2 });
    f.round([false]);
    f.tick(5000);
    f.round([false]);
    expect(f.state()).toBe('up');
    expect(f.tracker.endpoint(EP)?.votes[0].streak).toBe(1);
    f.round([false]);
    expect(f.state()).toBe('down');
  });
});

describe('blindness: every agent silent', () => {
  it('emits fleet.blind once, holds every state, then sighted and returned when one reports', () => {
    const f = fleet(4, {}, [EP, EP2]);
    for (let i = 0; i < 4; i++) f.round(all(4, true), [EP]);
    for (let i = 0; i < 4; i++) f.round(all(4, false), [EP2]);
    expect([f.state(EP), f.state(EP2)]).toEqual(['up', 'down']);
    const before = f.tracker.all();
    const gen = f.tracker.generation();

    const silent = [];
    for (let i = 0; i < 40; i++) silent.push(...f.tick(INTERVAL)); // 20 s of silence
    expect(kinds(silent)).toEqual(['agent.silent', 'agent.silent', 'agent.silent', 'agent.silent', 'fleet.blind']);
    expect(silent[4]).toMatchObject({ subject: 'fleet', oldState: 'sighted', newState: 'blind' });
    expect(silent[4].reason).toBe('all 4 probe agents silent: holding the last known state of every endpoint');
    expect([f.state(EP), f.state(EP2)]).toEqual(['up', 'down']);
    expect(f.tracker.all().get(EP2)?.since).toBe(before.get(EP2)?.since);
    expect(f.tracker.generation()).toBe(gen);

    const back = f.round([null, true, null, null], [EP]);
    expect(kinds(back)).toEqual(['agent.returned', 'fleet.sighted']);
    expect(back[1]).toMatchObject({ subject: 'fleet', oldState: 'blind', newState: 'sighted' });
    expect(back[1].reason).toMatch(/^probe agent probe-jkt \(jkt\) reported after \d+\.\d s blind$/);
    expect(f.tracker.agents().filter((a) => a.fresh).map((a) => a.id)).toEqual(['probe-jkt']);

    // Blind again later: recorded again, once.
    const again = [];
    for (let i = 0; i < 10; i++) again.push(...f.tick(INTERVAL));
    expect(kinds(again)).toEqual(['agent.silent', 'fleet.blind']);
  });

  it('an agent that was never seen makes nothing blind', () => {
    const tr = createHealthTracker({ now: 0 });
    tr.setEndpoints([EP], 0);
    expect(tr.tick(60_000)).toEqual([]);
  });

  it('a new agent joining a blind fleet ends the blindness', () => {
    const f = fleet(1);
    f.round([true]);
    f.tick(10_000);
    const events = f.tracker.ingest({ id: 'probe-new', region: 'mnl' }, [], f.t);
    expect(kinds(events)).toEqual(['agent.joined', 'fleet.sighted']);
  });
});

describe('duplicates and old results', () => {
  it('ignores a resent batch and results older than the newest seen', () => {
    const f = fleet(1, { fall: 2 });
    const agent = f.agents[0];
    const batch = [{ endpoint: EP, ok: false, error: REFUSED, at: 500 }];
    f.tracker.ingest(agent, batch, 500);
    f.tracker.ingest(agent, batch, 600); // resent
    f.tracker.ingest(agent, [{ endpoint: EP, ok: false, at: 400 }], 700); // older
    expect(f.state()).toBe('up');
    expect(f.tracker.endpoint(EP)?.votes[0]).toMatchObject({ streak: 1, at: 500 });
    expect(f.tracker.agents()[0].results).toBe(1);
    f.tracker.ingest(agent, [...batch, { endpoint: EP, ok: false, error: REFUSED, at: 1000 }], 1000);
    expect(f.state()).toBe('down');
  });

  it('counts an out-of-order batch in time order', () => {
    const f = fleet(1, { fall: 3 });
    const r = (at: number) => ({ endpoint: EP, ok: false, at });
    f.tracker.ingest(f.agents[0], [r(1500), r(500), r(1000)], 1500);
    expect(f.tracker.endpoint(EP)?.votes[0]).toMatchObject({ streak: 3, at: 1500 });
    expect(f.state()).toBe('down');
  });

  it('a buffered backlog from an agent that lost control counts as the consecutive checks it is', () => {
    const f = fleet(1, { fall: 2, rise: 4 });
    f.round([true]);
    const backlog = Array.from({ length: 20 }, (_, i) => ({ endpoint: EP, ok: i >= 16, at: 1000 + i * INTERVAL }));
    const events = f.tracker.ingest(f.agents[0], backlog, 12_000);
    // The outage and the recovery both happened while away; the latest truth is 4 successes.
    expect(f.state()).toBe('up');
    expect(f.tracker.endpoint(EP)?.votes[0].streak).toBe(4);
    expect(kinds(events)).toEqual([]);
  });
});

describe('transition flags', () => {
  it('falling when a majority started failing, cleared by a flip or a recovery; rising likewise', () => {
    const f = fleet(4, { fall: 3, rise: 3 });
    const tr = () => f.tracker.endpoint(EP)?.transition;
    const gen = () => f.tracker.generation();
    f.round(all(4, true));
    expect(tr()).toBeUndefined();
    let g = gen();
    f.round([false, false, true, true]);
    expect(tr()).toBeUndefined(); // 2 of 4 is no majority
    expect(gen()).toBe(g);
    f.round([false, false, false, true]);
    expect(tr()).toBe('falling');
    expect(gen()).toBe(g + 1);
    f.round(all(4, true));
    expect(tr()).toBeUndefined();
    for (let i = 0; i < 2; i++) {
      f.round(all(4, false));
      expect([f.state(), tr()]).toEqual(['up', 'falling']);
    }
    g = gen();
    f.round(all(4, false));
    expect([f.state(), tr()]).toEqual(['down', undefined]);
    expect(gen()).toBe(g + 1);
    for (let i = 0; i < 2; i++) {
      f.round(all(4, true));
      expect([f.state(), tr()]).toEqual(['down', 'rising']);
    }
    f.round(all(4, true));
    expect([f.state(), tr()]).toEqual(['up', undefined]);
  });

  it('steady results do not change the generation', () => {
    const f = fleet(4);
    f.round(all(4, true));
    const g = f.tracker.generation();
    for (let i = 0; i < 20; i++) f.round(all(4, true));
    for (let i = 0; i < 20; i++) f.round([false, true, true, true]);
    expect(f.tracker.generation()).toBe(g);
  });
});

describe('evidence', () => {
  const votes = (n: number, errors: (string | null)[]) => {
    const f = fleet(n, { fall: 1, rise: 1 });
    f.t += INTERVAL;
    f.agents.forEach((a, i) => {
      const e = errors[i];
      f.tracker.ingest(a, [e === null ? { endpoint: EP, ok: true, rttMs: [1.0, 1.2, 1.4, 9][i], at: f.t } : { endpoint: EP, ok: false, error: e, at: f.t }], f.t);
    });
    return f.tracker.endpoint(EP)!;
  };

  it.each([
    { errors: [null, null, null, null], state: 'up', evidence: '4 of 4 agents: ok (rtt 1.3 ms median)' },
    { errors: [null, null, null], state: 'up', evidence: '3 of 3 agents: ok (rtt 1.2 ms median)' },
    { errors: [REFUSED, REFUSED, REFUSED, null], state: 'down', evidence: `3 of 4 agents: ${REFUSED}; 1 of 4 agents: ok (rtt 9.0 ms median)` },
    { errors: ['timeout after 400 ms', REFUSED, 'timeout after 400 ms', 'timeout after 400 ms'], state: 'down', evidence: '4 of 4 agents: timeout after 400 ms' },
    // A tie at the same time goes to alphabetical order, so the text does not wobble between reads.
    { errors: ['timeout after 400 ms', REFUSED, REFUSED, 'timeout after 400 ms'], state: 'down', evidence: `4 of 4 agents: ${REFUSED}` },
    { errors: ['', 'HTTP 503', 'HTTP 503', ''], state: 'down', evidence: '4 of 4 agents: HTTP 503' },
    { errors: [undefined as unknown as string], state: 'down', evidence: '1 of 1 agents: failed' },
  ])('$evidence', ({ errors, state, evidence }) => {
    const h = votes(errors.length, errors);
    expect(h.state).toBe(state);
    expect(h.evidence).toBe(evidence);
  });

  it('event reasons carry the evidence; agent events name the agent', () => {
    const f = fleet(4);
    f.round(all(4, true));
    f.round(all(4, false));
    const [down] = f.round(all(4, false));
    expect(down.reason).toBe(`4 of 4 agents: ${REFUSED}`);
    expect(f.events[0]).toEqual({
      kind: 'agent.joined', subject: 'probe-sg', oldState: 'unknown', newState: 'fresh', at: 500, region: 'sg',
      reason: 'first report from probe agent probe-sg in region sg',
    });
    f.tick(3001);
    expect(f.events.at(-5)).toMatchObject({ kind: 'agent.silent', subject: 'probe-sg', reason: 'no report for 3.0 s (stale after 3.0 s): its votes no longer count' });
  });
});

describe('agents()', () => {
  it('lists every agent ever seen with its last report and accepted result count', () => {
    const f = fleet(2, {}, [EP, EP2]);
    f.round([true, true]);
    f.round([true, null]);
    expect(f.tracker.agents()).toEqual([
      { id: 'probe-sg', region: 'sg', lastSeen: 1000, fresh: true, results: 4 },
      { id: 'probe-jkt', region: 'jkt', lastSeen: 500, fresh: true, results: 2 },
    ]);
    f.tick(3000);
    expect(f.tracker.agents().map((a) => a.fresh)).toEqual([true, false]);
  });
});

describe('snapshots are copies', () => {
  it('mutating a read does not change the tracker', () => {
    const f = fleet(1);
    f.round([true]);
    const h = f.tracker.endpoint(EP)!;
    h.state = 'down';
    h.votes[0].ok = false;
    expect(f.tracker.endpoint(EP)).toMatchObject({ state: 'up', votes: [{ ok: true }] });
  });
});
