import { describe, expect, it } from 'vitest';
import { createResponderStats, type ResponderStats } from '../responder-stats.js';
import type { DnsServerStats } from '../server.js';
import { copyStats, sumStats } from './sum.js';

const server = (udp: number, open: number) => ({ udpMessages: udp, tcpMessages: 1, tcpConnections: open }) as unknown as DnsServerStats;
const responder = (o: Partial<ResponderStats>): ResponderStats => ({ ...createResponderStats(), ...o });

describe('sumStats: the counters of several workers, added up', () => {
  it('adds numbers, arrays slot by slot, and answers by region by name (each worker numbers regions as it met them)', () => {
    const a = responder({ queries: 10, noerror: 9, nxdomain: 1, byType: [5, 3, 1, 1, 0, 0], answerRegions: ['jkt', 'sg'], answersByRegion: [4, 2], decisionSeconds: 0.5 });
    const b = responder({ queries: 7, noerror: 7, byType: [7, 0, 0, 0, 0, 0], answerRegions: ['sg', 'bkk', 'jkt'], answersByRegion: [1, 3, 2], decisionSeconds: 0.25 });
    b.decisionBuckets[3] = 2;
    a.decisionBuckets[3] = 1;
    const s = sumStats([
      { responder: a, server: server(10, 2) },
      { responder: b, server: server(7, 1) },
    ]);
    expect(s.responder.queries).toBe(17);
    expect(s.responder.noerror).toBe(16);
    expect(s.responder.nxdomain).toBe(1);
    expect(s.responder.byType.slice(0, 6)).toEqual([12, 3, 1, 1, 0, 0]);
    expect(s.responder.decisionBuckets[3]).toBe(3);
    expect(s.responder.decisionSeconds).toBeCloseTo(0.75);
    const byRegion = Object.fromEntries(s.responder.answerRegions.map((r, i) => [r, s.responder.answersByRegion[i]]));
    expect(byRegion).toEqual({ jkt: 6, sg: 3, bkk: 3 });
    expect(s.server).toMatchObject({ udpMessages: 17, tcpMessages: 2, tcpConnections: 3 });
  });

  it('of no worker: zeros', () => {
    expect(sumStats([]).responder).toEqual(createResponderStats());
  });
});

describe('copyStats: the object /metrics reads, updated in place', () => {
  it('takes the new values, and never lowers a counter (a reading that missed a worker keeps the last total)', () => {
    const into = createResponderStats();
    const same = into;
    copyStats(into, responder({ queries: 10, byType: [10, 0, 0, 0, 0, 0], answerRegions: ['jkt'], answersByRegion: [10] }));
    copyStats(into, responder({ queries: 4, byType: [4, 0, 0, 0, 0, 0], answerRegions: ['sg', 'jkt'], answersByRegion: [1, 3] }));
    expect(into).toBe(same);
    expect(into.queries).toBe(10);
    expect(into.byType[0]).toBe(10);
    expect(Object.fromEntries(into.answerRegions.map((r, i) => [r, into.answersByRegion[i]]))).toEqual({ jkt: 10, sg: 1 });
    copyStats(into, responder({ queries: 25 }));
    expect(into.queries).toBe(25);
  });
});
