import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.js';
import type { ResultBuffer } from './buffer.js';
import type { ControlClient } from './control.js';
import type { ProbeTargets } from './types.js';

// The agent's side of its conversation with control: its targets (one fetch
// at a time, retried with back-off until the first answer, fetched again when
// a report names another version), its reports (one in flight, taken from the
// buffer and acked once control has them), and whether control is reachable
// (warned once an outage, told when it ends). How a request travels (URL,
// token, timeout) is control.ts's.

const FETCH_BACKOFF_MIN_MS = 100;
/** Results per report at most (control takes 10,000): a backlog after an outage goes over several. */
export const REPORT_MAX_RESULTS = 5000;
const FETCH_BACKOFF_MAX_MS = 2000;

/** Whether the agent runs, and the signal that cancels its work: both are new at each start. */
export type AgentLife = { readonly running: boolean; readonly signal: AbortSignal };

export type ControlSessionDeps = {
  control: ControlClient;
  buffer: ResultBuffer;
  agent: { id: string; region: string };
  life: AgentLife;
  log: Logger;
  /** Called with every list of targets control gives. */
  onTargets(next: ProbeTargets): void;
};

export interface ControlSession {
  /** Fetches the targets until they load (true) or the agent stops (false), backing off between tries. */
  firstTargets(): Promise<boolean>;
  /** Sends the buffered results (none: a heartbeat). One report at a time; results arriving meanwhile go with the next. */
  report(): void;
  /** The requests to control in flight, for stop to wait on. */
  inFlight(): Promise<unknown>[];
  readonly targets: ProbeTargets | undefined;
  readonly counts: { readonly reports: number; readonly resultsSent: number; readonly controlErrors: number };
  readonly controlUp: boolean;
}

export function createControlSession(deps: ControlSessionDeps): ControlSession {
  const { control, buffer, agent, life, log } = deps;
  let targets: ProbeTargets | undefined;
  let fetching: Promise<boolean> | undefined;
  let reporting: Promise<void> | undefined;
  const outage = createOutageLog(log, buffer);
  const counts = { reports: 0, resultsSent: 0, controlErrors: 0 };

  function controlFailed(err: unknown): void {
    counts.controlErrors++;
    outage.failed(err);
  }

  function setTargets(next: ProbeTargets): void {
    if (targets?.version !== next.version) log.info({ version: next.version, targets: next.targets.length }, 'targets loaded');
    targets = next;
    deps.onTargets(next);
  }

  /** One fetch at a time; true when targets were loaded. */
  function fetchTargets(): Promise<boolean> {
    fetching ??= control
      .targets(life.signal)
      .then((t) => {
        if (!life.running) return false;
        setTargets(t);
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
    async firstTargets() {
      for (let attempt = 0; life.running; attempt++) {
        if (await fetchTargets()) return true;
        await sleep(fetchBackoffMs(attempt), undefined, { signal: life.signal }).catch(() => {});
      }
      return false;
    },
    report() {
      if (!life.running || !targets || reporting) return;
      const { results, mark } = buffer.peek(REPORT_MAX_RESULTS);
      const version = targets.version;
      reporting = control
        .report({ agent, targets: version, results }, life.signal)
        .then((ack) => {
          buffer.ack(mark);
          counts.reports++;
          counts.resultsSent += results.length;
          outage.answered(results.length);
          if (ack.targets !== undefined && ack.targets !== targets?.version) {
            log.info({ have: targets?.version, current: ack.targets }, 'targets changed; fetching');
            void fetchTargets();
          }
        })
        .catch((err) => {
          if (life.running) controlFailed(err);
        })
        .finally(() => (reporting = undefined));
    },
    inFlight: () => [fetching, reporting].filter((p) => p !== undefined),
    get targets() {
      return targets;
    },
    counts,
    get controlUp() {
      return outage.up;
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
