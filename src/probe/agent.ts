import { anchoredClock } from '../health/clock.js';
import type { Logger } from '../log.js';
import { createResultBuffer } from './buffer.js';
import { createControlClient, type FetchLike } from './control.js';
import { createControlSession } from './control-session.js';
import type { CheckTls } from './check.js';
import { createRoundChecks } from './round-checks.js';

export type ProbeAgentOptions = {
  id: string;
  region: string;
  controlUrl: string;
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
  /** While control is away, keep this much (by age) of unsent results; 30000 unless set. */
  bufferMs?: number;
  /** Timeout of each request to control; 2000 unless set. */
  requestTimeoutMs?: number;
  log: Logger;
  /** How control is reached: `fetch` unless set (the TLS client of src/tls/client.ts in production). */
  fetchImpl?: FetchLike;
  /** What HTTPS checks trust besides the system's CAs (the agent's --ca). */
  checkTls?: CheckTls;
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
  controlUp: boolean;
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
 */
export function createProbeAgent(opts: ProbeAgentOptions): ProbeAgent {
  const log = opts.log.child({ component: 'probe', agent: opts.id, region: opts.region });
  const intervalMs = opts.intervalMs ?? 500;
  const jitter = opts.jitter ?? 0.2;
  const batchMs = opts.batchMs ?? Math.min(100, intervalMs);
  const control = createControlClient({
    url: opts.controlUrl,
    token: opts.token,
    timeoutMs: opts.requestTimeoutMs ?? 2000,
    fetchImpl: opts.fetchImpl,
  });
  // Results are stamped with a clock that does not jump when the wall clock is stepped: control
  // orders and de-duplicates an agent's results by these times.
  const clock = anchoredClock();
  const buffer = createResultBuffer({ windowMs: opts.bufferMs ?? 30_000, now: clock });

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
  const checks = createRoundChecks({ buffer, clock, life, tls: opts.checkTls });
  const session = createControlSession({
    control,
    buffer,
    agent: { id: opts.id, region: opts.region },
    life,
    log,
    onTargets: (next) => checks.setTargets(next),
  });

  async function firstTargets(): Promise<void> {
    if (await session.firstTargets()) round();
  }

  function round(): void {
    if (!running) return;
    timer = setTimeout(round, jitteredDelay(intervalMs, jitter, Math.random));
    rounds++;
    const launched = checks.launch();
    // Report once this round is in, or after batchMs: a hanging target must not hold back the others.
    void allOrTimeout(launched, batchMs).then(() => session.report());
  }

  return {
    start() {
      if (running) return;
      running = true;
      stopper = new AbortController();
      log.info({ controlUrl: opts.controlUrl, intervalMs }, 'probe agent starting');
      starting = firstTargets();
    },
    async stop() {
      if (!running) return;
      running = false;
      clearTimeout(timer);
      stopper.abort();
      await Promise.allSettled([starting, ...session.inFlight(), ...checks.inFlight()]);
      log.info('probe agent stopped');
    },
    get stats(): ProbeAgentStats {
      const { targets, counts } = session;
      return {
        rounds,
        checks: checks.count,
        reports: counts.reports,
        resultsSent: counts.resultsSent,
        controlErrors: counts.controlErrors,
        targetsVersion: targets?.version,
        targets: targets?.targets.length ?? 0,
        resultsDropped: buffer.dropped,
        buffered: buffer.size,
        controlUp: session.controlUp,
      };
    },
  };
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
