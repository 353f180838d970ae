import { describe, expect, it } from 'vitest';
import { applyOverrides, parseSubject, type Override } from './overrides.js';
import type { EndpointHealth } from './types.js';

const h = (state: 'up' | 'down', evidence = state === 'up' ? '4 of 4 agents: ok (rtt 1.2 ms median)' : '4 of 4 agents: HTTP 503'): EndpointHealth => ({
  state,
  since: 0,
  evidence,
  votes: [],
});

const A1 = 'jkt/jkt-a/203.0.113.21';
const A2 = 'jkt/jkt-a/203.0.113.23';
const B1 = 'jkt/jkt-b/203.0.113.22';
const S1 = 'sg/sg-a/203.0.113.11';
const V6 = 'sg/sg-a/2001:db8::11';
const health = new Map([
  [A1, h('up')],
  [A2, h('down')],
  [B1, h('up')],
  [S1, h('up')],
  [V6, h('down')],
]);

const drain = (subject: string, reason = 'maintenance'): Override => ({ subject, mode: 'drain', reason });
const forceUp = (subject: string, reason = 'probes wrong'): Override => ({ subject, mode: 'force-up', reason });

describe('applyOverrides', () => {
  it('without overrides, passes probe health and its evidence through', () => {
    const out = applyOverrides(health, []);
    expect(out.get(A1)).toEqual({ state: 'up', reason: '4 of 4 agents: ok (rtt 1.2 ms median)' });
    expect(out.get(A2)).toEqual({ state: 'down', reason: '4 of 4 agents: HTTP 503' });
    expect([...out.keys()]).toEqual([...health.keys()]);
  });

  type Row = { name: string; overrides: Override[]; want: Record<string, [string, string]> };
  const rows: Row[] = [
    {
      name: 'drain a region forces all its endpoints down',
      overrides: [drain('region:jkt')],
      want: {
        [A1]: ['down', 'drained: maintenance (region jkt)'],
        [A2]: ['down', 'drained: maintenance (region jkt)'],
        [B1]: ['down', 'drained: maintenance (region jkt)'],
        [S1]: ['up', '4 of 4 agents: ok (rtt 1.2 ms median)'],
      },
    },
    {
      name: 'drain a zone touches only that zone',
      overrides: [drain('zone:jkt/jkt-a', 'rack swap')],
      want: { [A1]: ['down', 'drained: rack swap (zone jkt/jkt-a)'], [B1]: ['up', '4 of 4 agents: ok (rtt 1.2 ms median)'] },
    },
    {
      name: 'force-up an endpoint the probes call down',
      overrides: [forceUp(`endpoint:${A2}`)],
      want: { [A2]: ['up', `forced up: probes wrong (endpoint ${A2})`], [A1]: ['up', '4 of 4 agents: ok (rtt 1.2 ms median)'] },
    },
    {
      name: 'zone beats region',
      overrides: [drain('region:jkt'), forceUp('zone:jkt/jkt-b', 'canary')],
      want: { [B1]: ['up', 'forced up: canary (zone jkt/jkt-b)'], [A1]: ['down', 'drained: maintenance (region jkt)'] },
    },
    {
      name: 'endpoint beats zone beats region, whatever the order given',
      overrides: [drain(`endpoint:${A1}`, 'bad GPU'), forceUp('zone:jkt/jkt-a', 'canary'), drain('region:jkt')],
      want: {
        [A1]: ['down', 'drained: bad GPU (endpoint jkt/jkt-a/203.0.113.21)'],
        [A2]: ['up', 'forced up: canary (zone jkt/jkt-a)'],
        [B1]: ['down', 'drained: maintenance (region jkt)'],
      },
    },
    {
      name: 'region force-up loses to an endpoint drain',
      overrides: [forceUp('region:sg', 'ignore probes'), drain(`endpoint:${V6}`, 'v6 broken')],
      want: { [S1]: ['up', 'forced up: ignore probes (region sg)'], [V6]: ['down', `drained: v6 broken (endpoint ${V6})`] },
    },
    {
      name: 'on the same subject, drain wins either way round',
      overrides: [forceUp('zone:jkt/jkt-a'), drain('zone:jkt/jkt-a'), forceUp('zone:jkt/jkt-a')],
      want: { [A1]: ['down', 'drained: maintenance (zone jkt/jkt-a)'] },
    },
    {
      name: 'a prefix is not a match: region jk is not jkt, zone jkt/jkt is not jkt/jkt-a',
      overrides: [drain('region:jk'), drain('zone:jkt/jkt'), drain('endpoint:jkt/jkt-a/203.0.113.2')],
      want: { [A1]: ['up', '4 of 4 agents: ok (rtt 1.2 ms median)'], [A2]: ['down', '4 of 4 agents: HTTP 503'] },
    },
    {
      name: 'malformed subjects are ignored',
      overrides: [drain('jkt'), drain('zone:jkt'), drain('region:jkt/jkt-a'), drain('toString:jkt'), drain('endpoint:jkt//203.0.113.21')],
      want: { [A1]: ['up', '4 of 4 agents: ok (rtt 1.2 ms median)'] },
    },
  ];

  it.each(rows)('$name', ({ overrides, want }) => {
    const out = applyOverrides(health, overrides);
    for (const [key, [state, reason]] of Object.entries(want)) {
      const hit = reason.startsWith('drained') ? 'drain' : reason.startsWith('forced up') ? 'force-up' : undefined;
      expect(out.get(key)).toEqual({ state, reason, ...(hit ? { override: hit } : {}) });
    }
  });

  it('does not touch its input', () => {
    const before = JSON.stringify([...health]);
    applyOverrides(health, [drain('region:jkt')]);
    expect(JSON.stringify([...health])).toBe(before);
  });
});

describe('parseSubject', () => {
  it.each([
    ['region:jkt', { level: 'region', key: 'jkt' }],
    ['zone:jkt/jkt-a', { level: 'zone', key: 'jkt/jkt-a' }],
    ['endpoint:jkt/jkt-a/203.0.113.21', { level: 'endpoint', key: 'jkt/jkt-a/203.0.113.21' }],
    ['endpoint:sg/sg-a/2001:db8::11', { level: 'endpoint', key: 'sg/sg-a/2001:db8::11' }],
    ['region:', undefined],
    ['region:jkt/x', undefined],
    ['zone:jkt', undefined],
    ['zone:jkt/a/b', undefined],
    ['endpoint:jkt/jkt-a', undefined],
    ['datacenter:jkt', undefined],
    ['constructor:jkt', undefined],
    ['jkt', undefined],
  ])('%s', (subject, want) => {
    expect(parseSubject(subject)).toEqual(want);
  });
});
