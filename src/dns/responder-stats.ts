// The responder's counters (read by metrics/metrics.ts): replies by rcode and
// QTYPE, answers by region, and the histogram of time spent in steer(). Plain
// numbers in arrays that are never replaced, so that counting a query is one
// increment.

import { DROP, RCODE, TYPE } from './wire.js';

export type ResponderStats = {
  queries: number;
  /** Answered NOERROR (with data or NODATA). */
  noerror: number;
  nxdomain: number;
  refused: number;
  formerr: number;
  notimp: number;
  badvers: number;
  servfail: number;
  /** Messages with no reply: too short for a header, or responses (QR=1). */
  dropped: number;
  /** UDP replies sent empty with TC set because they did not fit. */
  truncated: number;
  /** UDP replies not sent: the client network was over its response rate (RRL). */
  rrlDropped: number;
  /** UDP replies sent empty with TC set instead of in full: over the rate, every `slip`-th one (RRL). */
  rrlSlipped: number;
  /** Exceptions caught while answering (each answered SERVFAIL). */
  errors: number;
  /** steer() calls: answer-set cache misses times variants. */
  steerCalls: number;
  /** Times the zone was compiled from a new snapshot. */
  compiles: number;
  /** Queries whose question was read, by QTYPE: `byType[i]` counts `QTYPE_LABELS[i]`. */
  byType: number[];
  /** Every region seen in a snapshot, in the order first seen; never shrinks, so indexes stay valid. */
  answerRegions: string[];
  /** A and AAAA answers from steer() with addresses, by the region that served them: `answersByRegion[i]` counts `answerRegions[i]`. */
  answersByRegion: number[];
  /** A and AAAA answers from steer() without an address (NODATA: no region could serve). */
  emptyAnswers: number;
  /**
   * Time spent in steer() (cache misses only): `decisionBuckets[i]` counts calls that took at most
   * `DECISION_BUCKETS[i]` seconds and more than the bound before it (not cumulative); the last slot is
   * past the last bound. The counts add up to `steerCalls`.
   */
  decisionBuckets: number[];
  /** Total time spent in steer(), in seconds. */
  decisionSeconds: number;
};

/** Labels of `ResponderStats.byType`, in index order. */
export const QTYPE_LABELS = ['A', 'AAAA', 'NS', 'SOA', 'ANY', 'CNAME', 'MX', 'TXT', 'SRV', 'CAA', 'other'] as const;
export const QTYPE_OTHER = QTYPE_LABELS.length - 1;
/** QTYPE (below 256) → index in `byType`: one load per query, no string and no map. */
export const QTYPE_SLOT = new Uint8Array(256).fill(QTYPE_OTHER);
QTYPE_SLOT[TYPE.A] = 0;
QTYPE_SLOT[TYPE.AAAA] = 1;
QTYPE_SLOT[TYPE.NS] = 2;
QTYPE_SLOT[TYPE.SOA] = 3;
QTYPE_SLOT[TYPE.ANY] = 4;
// The static records' types (CAA is 257, past the table: QTYPE_CAA).
QTYPE_SLOT[TYPE.CNAME] = 5;
QTYPE_SLOT[TYPE.MX] = 6;
QTYPE_SLOT[TYPE.TXT] = 7;
QTYPE_SLOT[TYPE.SRV] = 8;
export const QTYPE_CAA = 9;

/** Upper bounds (seconds) of `ResponderStats.decisionBuckets`; one more slot counts the rest. */
export const DECISION_BUCKETS: readonly number[] = [
  0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];

export function createResponderStats(): ResponderStats {
  return {
    queries: 0,
    noerror: 0,
    nxdomain: 0,
    refused: 0,
    formerr: 0,
    notimp: 0,
    badvers: 0,
    servfail: 0,
    dropped: 0,
    truncated: 0,
    rrlDropped: 0,
    rrlSlipped: 0,
    errors: 0,
    steerCalls: 0,
    compiles: 0,
    byType: QTYPE_LABELS.map(() => 0),
    answerRegions: [],
    answersByRegion: [],
    emptyAnswers: 0,
    decisionBuckets: [...DECISION_BUCKETS, Infinity].map(() => 0),
    decisionSeconds: 0,
  };
}

/** Counts one reply (or, for DROP, one message left unanswered) by its rcode. */
export function countRcode(stats: ResponderStats, rcode: number): void {
  if (rcode === RCODE.NOERROR) stats.noerror++;
  else if (rcode === RCODE.NXDOMAIN) stats.nxdomain++;
  else if (rcode === RCODE.REFUSED) stats.refused++;
  else if (rcode === RCODE.FORMERR) stats.formerr++;
  else if (rcode === RCODE.NOTIMP) stats.notimp++;
  else if (rcode === RCODE.BADVERS) stats.badvers++;
  else if (rcode === RCODE.SERVFAIL) stats.servfail++;
  else if (rcode === DROP) stats.dropped++;
}

/** Counts one steer() call that took `ms` milliseconds in the decision histogram. */
export function timeDecision(stats: ResponderStats, ms: number): void {
  const seconds = ms / 1000;
  let i = 0;
  while (i < DECISION_BUCKETS.length && seconds > DECISION_BUCKETS[i]) i++;
  stats.decisionBuckets[i]++;
  stats.decisionSeconds += seconds;
}

/** A region's index in `stats.answerRegions` (and `answersByRegion`), given one at first sight. */
export type RegionSlots = (id: string) => number;

export function createRegionSlots(stats: ResponderStats): RegionSlots {
  const byRegion = stats.answersByRegion;
  const regionSlots = new Map<string, number>();
  return function regionSlot(id: string): number {
    let slot = regionSlots.get(id);
    if (slot === undefined) {
      slot = stats.answerRegions.push(id) - 1;
      byRegion.push(0);
      regionSlots.set(id, slot);
    }
    return slot;
  };
}
