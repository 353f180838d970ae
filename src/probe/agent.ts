import { anchoredClock } from '../health/clock.js';
import type { Logger } from '../log.js';
import { createResultBuffer } from './buffer.js';
import { createControlClient, type FetchLike } from './control.js';
import { createControlSession, type ControlSession } from './control-session.js';
import type { CheckTls } from './check.js';
import { createRoundChecks } from './round-checks.js';
import { createHeldTargets } from './targets.js';

export type ProbeAgentOptions = {
  id: string;
  region: string;
  /** Control's API: one replica (or give `controlUrls`). */
  controlUrl?: string;
  /** Every replica's API: each gets every report, and targets come from whichever answers (the highest version). */
  controlUrls?: readonly string[];
  token: string;
  /** Time between rounds; 500 unless set. */
  intervalMs?: number;
  /** Each interval is drawn from intervalMs × (1 ± jitter); 0.2 unless set. */
  jitter?: number;
  /**
   * The longest a round's finished results wait for its slower checks before
   * they are reported (the rest go with a later report); 100 (at most
   * intervalMs) unless set.
   */
  batchMs?: number;
  /** While a replica of control is away, keep this much (by age) of the results it has not taken; 30000 unless set. */
  bufferMs?: number;
  /** Timeout of each request to control; 2000 unless set. */
  requestTimeoutMs?: number;
  log: Logger;
  /** How control is reached: `fetch` unless set (the TLS client of src/tls/client.ts in production). */
  fetchImpl?: FetchLike;
  /** What HTTPS checks trust besides the system's CAs (the agent's --ca). */
  checkTls?: CheckTls;
};

/** One replica of control as the agent sees it. */
export type ControlReplicaStats = {
  url: string;
  /** It answered the last request (or none failed yet). */
  up: boolean;
  /** When it last took a report (ms since the epoch). */
  lastReportAt?: number;
  reports: number;
  resultsSent: number;
  resultsDropped: number;
  buffered: number;
  controlErrors: number;
};

export type ProbeAgentStats = {
  /** The targets' version, once fetched. */
  targetsVersion: number | undefined;
  targets: number;
  rounds: number;
  /** Checks run (a check shared by several endpoints counts once). */
  checks: number;
  reports: number;
  resultsSent: number;
  resultsDropped: number;
  buffered: number;
  /** Failed requests to control (targets or report). */
  controlErrors: number;
  /** Some replica of control answers. */
  controlUp: boolean;
  /** Each replica; `reports`, `resultsSent`, `resultsDropped`, `buffered` and `controlErrors` above are their sums. */
  controls: ControlReplicaStats[];
};

export interface ProbeAgent {
  /** Fetches targets (retrying with back-off) and starts the rounds. Never throws on control errors. */
  start(): void;
  /** Stops the rounds and cancels checks and requests in flight. Unsent results are discarded. */
  stop(): Promise<void>;
  readonly stats: ProbeAgentStats;
}

/**
 * A probe agent: checks every target on a jittered interval and reports raw
 * results to control. Endpoints sharing a check are probed once per round; a
 * check still running from an earlier round (a hanging server) is not started
 * twice. Results control has not taken are kept for `bufferMs` and resent.
 * With several replicas of control, every report goes to each of them (each
 * with its own buffer and back-off), so whichever leads holds the last
 * seconds of results.
 */
export function createProbeAgent(opts: ProbeAgentOptions): ProbeAgent {
  const log = opts.log.child({ component: 'probe', agent: opts.id, region: opts.region });
  const intervalMs = opts.intervalMs ?? 500;
  const jitter = opts.jitter ?? 0.2;
  const batchMs = opts.batchMs ?? Math.min(100, intervalMs);
  const urls = opts.controlUrls ?? (opts.controlUrl !== undefined ? [opts.controlUrl] : []);
  if (urls.length === 0) throw new Error('a probe agent needs a control URL');
  // Results are stamped with a clock that does not jump when the wall clock is stepped: control
  // orders and de-duplicates an agent's results by these times.
  const clock = anchoredClock();

  let running = false;
  let stopper = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let starting: Promise<void> | undefined;
  let rounds = 0;
  const life = {
    get running() {
      return running;
    },
    get signal() {
      return stopper.signal;
    },
  };
  const targets = createHeldTargets({ log, replicas: urls.length, onTargets: (next) => checks.setTargets(next) });
  const sessions: ControlSession[] = urls.map((url) =>
    createControlSession({
      url,
      control: createControlClient({ url, token: opts.token, timeoutMs: opts.requestTimeoutMs ?? 2000, fetchImpl: opts.fetchImpl }),
      buffer: createResultBuffer({ windowMs: opts.bufferMs ?? 30_000, now: clock }),
      agent: { id: opts.id, region: opts.region },
      life,
      log: urls.length > 1 ? log.child({ control: url }) : log,
      targets,
    }),
  );
  // One round of checks feeds every replica's buffer.
  const checks = createRoundChecks({ buffer: { push: (results) => sessions.forEach((s) => s.buffer.push(results)) }, clock, life, tls: opts.checkTls });

  /** Rounds start once any replica has given targets; the others keep trying until then. */
  function firstTargets(): Promise<void> {
    let started = false;
    return Promise.all(
      sessions.map((s) =>
        s.firstTargets().then((ok) => {
          if (!ok || started) return;
          started = true;
          round();
        }),
      ),
    ).then(() => {});
  }

  function round(): void {
    if (!running) return;
    timer = setTimeout(round, jitteredDelay(intervalMs, jitter, Math.random));
    rounds++;
    const launched = checks.launch();
    // Report once this round is in, or after batchMs: a hanging target must not hold back the others.
    void allOrTimeout(launched, batchMs).then(() => sessions.forEach((s) => s.report()));
  }

  return {
    start() {
      if (running) return;
      running = true;
      stopper = new AbortController();
      log.info({ controlUrl: urls.length === 1 ? urls[0] : urls, intervalMs }, 'probe agent starting');
      starting = firstTargets();
    },
    async stop() {
      if (!running) return;
      running = false;
      clearTimeout(timer);
      stopper.abort();
      await Promise.allSettled([starting, ...sessions.flatMap((s) => s.inFlight()), ...checks.inFlight()]);
      log.info('probe agent stopped');
    },
    get stats(): ProbeAgentStats {
      const controls = sessions.map(replicaStats);
      const sum = (k: 'reports' | 'resultsSent' | 'resultsDropped' | 'buffered' | 'controlErrors') => controls.reduce((n, c) => n + c[k], 0);
      const held = targets.current;
      return {
        rounds,
        checks: checks.count,
        reports: sum('reports'),
        resultsSent: sum('resultsSent'),
        controlErrors: sum('controlErrors'),
        targetsVersion: held?.version,
        targets: held?.targets.length ?? 0,
        resultsDropped: sum('resultsDropped'),
        buffered: sum('buffered'),
        controlUp: controls.some((c) => c.up),
        controls,
      };
    },
  };
}

function replicaStats(s: ControlSession): ControlReplicaStats {
  const { counts, buffer } = s;
  return { url: s.url, up: s.controlUp, lastReportAt: s.lastReportAt, reports: counts.reports, resultsSent: counts.resultsSent, resultsDropped: buffer.dropped, buffered: buffer.size, controlErrors: counts.controlErrors };
}

/** intervalMs × (1 ± jitter), uniformly: agents started together drift apart instead of probing in lockstep. */
export function jitteredDelay(intervalMs: number, jitter: number, random: () => number): number {
  return Math.max(1, intervalMs * (1 + jitter * (2 * random() - 1)));
}

function allOrTimeout(promises: Promise<unknown>[], ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void Promise.allSettled(promises).then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
