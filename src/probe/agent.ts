import { setTimeout as sleep } from 'node:timers/promises';
import type { Check } from '../config/schema.js';
import { anchoredClock } from '../health/clock.js';
import type { Logger } from '../log.js';
import { createResultBuffer } from './buffer.js';
import { checkKey, runCheck } from './check.js';
import { createControlClient } from './control.js';
import type { ProbeResult, ProbeTargets } from './types.js';

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
  fetchImpl?: typeof fetch;
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

const FETCH_BACKOFF_MIN_MS = 100;
/** Results per report at most (control takes 10,000): a backlog after an outage goes over several. */
export const REPORT_MAX_RESULTS = 5000;
const FETCH_BACKOFF_MAX_MS = 2000;

type Group = { key: string; check: Check; endpoints: string[] };

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
  const agent = { id: opts.id, region: opts.region };

  let running = false;
  let stopper = new AbortController();
  let targets: ProbeTargets | undefined;
  let groups: Group[] = [];
  let timer: NodeJS.Timeout | undefined;
  let starting: Promise<void> | undefined;
  let fetching: Promise<boolean> | undefined;
  let reporting: Promise<void> | undefined;
  const checking = new Map<string, Promise<void>>();
  let outage: { since: number; dropped: number } | undefined;
  const counts = { rounds: 0, checks: 0, reports: 0, resultsSent: 0, controlErrors: 0 };

  function controlFailed(err: unknown): void {
    counts.controlErrors++;
    const reason = err instanceof Error ? err.message : String(err);
    if (outage) return void log.debug({ reason }, 'control still unreachable');
    outage = { since: Date.now(), dropped: buffer.dropped };
    log.warn({ reason }, 'control unreachable; buffering results until it answers');
  }

  function controlAnswered(resent?: number): void {
    if (!outage) return;
    log.info(
      { downMs: Date.now() - outage.since, resent, dropped: buffer.dropped - outage.dropped },
      'control reachable again',
    );
    outage = undefined;
  }

  function setTargets(next: ProbeTargets): void {
    if (targets?.version !== next.version) log.info({ version: next.version, targets: next.targets.length }, 'targets loaded');
    targets = next;
    const byKey = new Map<string, Group>();
    for (const t of next.targets) {
      const key = checkKey(t.check);
      const g = byKey.get(key) ?? { key, check: t.check, endpoints: [] };
      g.endpoints.push(t.endpoint);
      byKey.set(key, g);
    }
    groups = [...byKey.values()];
  }

  /** One fetch at a time; true when targets were loaded. */
  function fetchTargets(): Promise<boolean> {
    fetching ??= control
      .targets(stopper.signal)
      .then((t) => {
        if (!running) return false;
        setTargets(t);
        controlAnswered();
        return true;
      })
      .catch((err) => {
        if (running) controlFailed(err);
        return false;
      })
      .finally(() => (fetching = undefined));
    return fetching;
  }

  async function firstTargets(): Promise<void> {
    for (let attempt = 0; running; attempt++) {
      if (await fetchTargets()) return round();
      await sleep(fetchBackoffMs(attempt), undefined, { signal: stopper.signal }).catch(() => {});
    }
  }

  function round(): void {
    if (!running) return;
    timer = setTimeout(round, jitteredDelay(intervalMs, jitter, Math.random));
    counts.rounds++;
    const launched: Promise<void>[] = [];
    for (const g of groups) {
      if (checking.has(g.key)) continue;
      counts.checks++;
      const p = runCheck(g.check, stopper.signal)
        .then((outcome) => {
          if (!running) return;
          const at = Math.round(clock());
          buffer.push(
            g.endpoints.map((endpoint): ProbeResult =>
              outcome.ok ? { endpoint, ok: true, rttMs: outcome.rttMs, at } : { endpoint, ok: false, error: outcome.error, at },
            ),
          );
        })
        .finally(() => checking.delete(g.key));
      checking.set(g.key, p);
      launched.push(p);
    }
    // Report once this round is in, or after batchMs: a hanging target must not hold back the others.
    void allOrTimeout(launched, batchMs).then(report);
  }

  /** One report at a time; results arriving meanwhile go with the next. */
  function report(): void {
    if (!running || !targets || reporting) return;
    const { results, mark } = buffer.peek(REPORT_MAX_RESULTS);
    const version = targets.version;
    reporting = control
      .report({ agent, targets: version, results }, stopper.signal)
      .then((ack) => {
        buffer.ack(mark);
        counts.reports++;
        counts.resultsSent += results.length;
        controlAnswered(results.length);
        if (ack.targets !== undefined && ack.targets !== targets?.version) {
          log.info({ have: targets?.version, current: ack.targets }, 'targets changed; fetching');
          void fetchTargets();
        }
      })
      .catch((err) => {
        if (running) controlFailed(err);
      })
      .finally(() => (reporting = undefined));
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
      await Promise.allSettled([starting, fetching, reporting, ...checking.values()]);
      log.info('probe agent stopped');
    },
    get stats(): ProbeAgentStats {
      return {
        ...counts,
        targetsVersion: targets?.version,
        targets: targets?.targets.length ?? 0,
        resultsDropped: buffer.dropped,
        buffered: buffer.size,
        controlUp: outage === undefined,
      };
    },
  };
}

/** The wait after the n-th failed first fetch of targets (from 0): doubling from 100 ms, at most 2 s. */
export function fetchBackoffMs(attempt: number): number {
  return Math.min(FETCH_BACKOFF_MIN_MS * 2 ** attempt, FETCH_BACKOFF_MAX_MS);
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
