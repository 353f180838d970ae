import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.js';
import type { ResultBuffer } from './buffer.js';
import type { ControlClient } from './control.js';
import type { HeldTargets } from './targets.js';

// The agent's side of its conversation with one replica of control: targets
// (one fetch at a time, retried with back-off until the agent holds some,
// fetched again when a report names a version worth having), its reports
// (one in flight, taken from this replica's own buffer and acked once it has
// them), and whether it is reachable (warned once an outage, told when it
// ends). Every replica gets every result: each keeps its own tracker. How a
// request travels (URL, token, timeout) is control.ts's.

const FETCH_BACKOFF_MIN_MS = 100;
/** Results per report at most (control takes 10,000): a backlog after an outage goes over several. */
export const REPORT_MAX_RESULTS = 5000;
const FETCH_BACKOFF_MAX_MS = 2000;

/** Whether the agent runs, and the signal that cancels its work: both are new at each start. */
export type AgentLife = { readonly running: boolean; readonly signal: AbortSignal };

export type ControlSessionDeps = {
  /** The replica's URL, for logs and stats. */
  url: string;
  control: ControlClient;
  /** The results this replica has not taken yet. */
  buffer: ResultBuffer;
  agent: { id: string; region: string };
  life: AgentLife;
  log: Logger;
  /** The agent's targets, shared by every session: the highest version any replica gave. */
  targets: HeldTargets;
  now?: () => number;
};

export type SessionCounts = { readonly reports: number; readonly resultsSent: number; readonly controlErrors: number };

export interface ControlSession {
  readonly url: string;
  readonly buffer: ResultBuffer;
  /** Fetches targets until the agent holds some (true) or stops (false), backing off between tries. */
  firstTargets(): Promise<boolean>;
  /** Sends the buffered results (none: a heartbeat). One report at a time; results arriving meanwhile go with the next. */
  report(): void;
  /** The requests to control in flight, for stop to wait on. */
  inFlight(): Promise<unknown>[];
  readonly counts: SessionCounts;
  readonly controlUp: boolean;
  /** When this replica last took a report (ms since the epoch). */
  readonly lastReportAt: number | undefined;
}

export function createControlSession(deps: ControlSessionDeps): ControlSession {
  const { control, buffer, agent, life, log, targets } = deps;
  const now = deps.now ?? Date.now;
  let fetching: Promise<boolean> | undefined;
  let reporting: Promise<void> | undefined;
  let lastReportAt: number | undefined;
  const outage = createOutageLog(log, buffer);
  const counts = { reports: 0, resultsSent: 0, controlErrors: 0 };

  function controlFailed(err: unknown): void {
    counts.controlErrors++;
    outage.failed(err);
  }

  /** One fetch at a time; true when the agent holds targets after it. */
  function fetchTargets(): Promise<boolean> {
    fetching ??= control
      .targets(life.signal)
      .then((t) => {
        if (!life.running) return false;
        targets.offer(t, deps.url);
        outage.answered();
        return true;
      })
      .catch((err) => {
        if (life.running) controlFailed(err);
        return false;
      })
      .finally(() => (fetching = undefined));
    return fetching;
  }

  return {
    url: deps.url,
    buffer,
    async firstTargets() {
      for (let attempt = 0; life.running && !targets.current; attempt++) {
        if (await fetchTargets()) return true;
        await sleep(fetchBackoffMs(attempt), undefined, { signal: life.signal }).catch(() => {});
      }
      return life.running && targets.current !== undefined;
    },
    report() {
      const held = targets.current;
      if (!life.running || !held || reporting) return;
      const { results, mark } = buffer.peek(REPORT_MAX_RESULTS);
      reporting = control
        .report({ agent, targets: held.version, results }, life.signal)
        .then((ack) => {
          buffer.ack(mark);
          counts.reports++;
          counts.resultsSent += results.length;
          lastReportAt = now();
          outage.answered(results.length);
          if (ack.targets !== undefined && targets.wants(ack.targets)) {
            log.info({ have: targets.current?.version, current: ack.targets }, 'targets changed; fetching');
            void fetchTargets();
          }
        })
        .catch((err) => {
          if (life.running) controlFailed(err);
        })
        .finally(() => (reporting = undefined));
    },
    inFlight: () => [fetching, reporting].filter((p) => p !== undefined),
    counts,
    get controlUp() {
      return outage.up;
    },
    get lastReportAt() {
      return lastReportAt;
    },
  };
}

/** Whether control answers: a warning once it stops, news when it is back (how long, what was resent and dropped meanwhile). */
function createOutageLog(log: Logger, buffer: ResultBuffer) {
  let outage: { since: number; dropped: number } | undefined;
  return {
    failed(err: unknown): void {
      const reason = err instanceof Error ? err.message : String(err);
      if (outage) return void log.debug({ reason }, 'control still unreachable');
      outage = { since: Date.now(), dropped: buffer.dropped };
      log.warn({ reason }, 'control unreachable; buffering results until it answers');
    },
    answered(resent?: number): void {
      if (!outage) return;
      log.info(
        { downMs: Date.now() - outage.since, resent, dropped: buffer.dropped - outage.dropped },
        'control reachable again',
      );
      outage = undefined;
    },
    get up() {
      return outage === undefined;
    },
  };
}

/** The wait after the n-th failed first fetch of targets (from 0): doubling from 100 ms, at most 2 s. */
export function fetchBackoffMs(attempt: number): number {
  return Math.min(FETCH_BACKOFF_MIN_MS * 2 ** attempt, FETCH_BACKOFF_MAX_MS);
}
