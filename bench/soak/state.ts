// What the soak knows and counts while it runs, shared by the flapper, the
// writer and the checker: the endpoints and their outages, every answer's
// latency, the wrong answers and the tallies the report prints.
import type { ChildProcess } from 'node:child_process';

export type Endpoint = {
  region: string;
  zone: string;
  address: string;
  port: number;
  proc?: ChildProcess;
  /** Since when it has been dead (its checks fail), if it is. */
  deadSince?: number;
  how?: 'kill' | 'crash' | 'error';
  /** Since when it has been drained (the API's answer came back), if it is. */
  drainedSince?: number;
  /** The last time (query sent) the checker saw it in an answer during the current outage. */
  seenDuringOutage?: number;
  /** Taken by the flapper or the writer (set before their first await, so that two never pick the same one). */
  busy?: boolean;
};

export type Soak = {
  counts: {
    crashes: string[]; // processes that exited without being told to
    arusErrorLogs: number;
    dnsTimeouts: number;
    dnsServfail: number;
    dnsOtherRcode: number;
    dnsEmpty: number;
    dnsUnknownAddress: number;
    checkerQueries: number;
    api: { ok: number; status5xx: number; status4xx: number; failed: number };
    flaps: { kill: number; crash: number; error: number };
    drains: number;
    weightWrites: number;
    ttlWrites: number;
  };
  endpoints: Endpoint[];
  byAddress: Map<string, Endpoint>;
  /** Per outage kind: ms from death (or drain) to the last answer that held it; 0 when no answer held it. */
  removals: Record<string, number[]>;
  latencies: number[]; // checker answers, ms
  timeouts: number[]; // checker timeouts: when the query was sent
  wrong: string[];
  /** The admin API of `arus up`, once it is ready. */
  apiUrl: string;
};

export function createSoak(): Soak {
  return {
    counts: {
      crashes: [],
      arusErrorLogs: 0,
      dnsTimeouts: 0,
      dnsServfail: 0,
      dnsOtherRcode: 0,
      dnsEmpty: 0,
      dnsUnknownAddress: 0,
      checkerQueries: 0,
      api: { ok: 0, status5xx: 0, status4xx: 0, failed: 0 },
      flaps: { kill: 0, crash: 0, error: 0 },
      drains: 0,
      weightWrites: 0,
      ttlWrites: 0,
    },
    endpoints: [],
    byAddress: new Map(),
    removals: { kill: [], crash: [], error: [], drain: [] },
    latencies: [],
    timeouts: [],
    wrong: [],
    apiUrl: '',
  };
}

export const unavailable = (soak: Soak) => soak.endpoints.filter((e) => e.busy).length;
export const available = (soak: Soak) => soak.endpoints.filter((e) => !e.busy);

/** The end of an outage that began at `since`: how long answers still held the endpoint. */
export function closeOutage(soak: Soak, e: Endpoint, since: number, kind: string): void {
  soak.removals[kind].push(e.seenDuringOutage !== undefined ? e.seenDuringOutage - since : 0);
  e.seenDuringOutage = undefined;
}
