// Active readiness checks of every instance: rise/fall streaks flip its
// readiness in the pool, and its gauges are scraped on the way. What an
// instance is asked is in readiness/probe.ts; how its metrics are read, in
// readiness/gauges.ts.
//
// The numbers (defaults below). A check is two requests (/health, then /v1/models), so with 10 % of
// requests failing at random a check fails with q = 1 − 0.9² = 0.19. Checks come every 200 ms; once a
// ready instance fails one, the next come every 20 ms (HAProxy's `fastinter`) until it passes or reaches
// its fall, so the fall is counted in checks but lasts ~0.2 s, not 2:
// - an instance that answers with errors (a 5xx, a model not listed) is out after 10 failed checks in a row:
//   the first within a round (100 ms on average, 200 at worst) and 9 more ~22 ms apart, ~0.3 s on average,
//   ~0.4 s at worst. 10 % random errors make such a run with probability q¹⁰ = 6.1e-8 per round: 8
//   instances × 3 000 rounds in 10 minutes × 0.81 (a run starts after a pass) × 6.1e-8 ≈ 0.0012 false
//   flips per 10 minutes for the 8 together, one in about 6 days (4 in a row, the former rule, made ~10 per
//   10 minutes; 2 at 500 ms, the rule before it, about one a minute per instance).
// - one that does not answer (refused, reset, timed out) is out after 2: random errors are answered, a
//   refused connection on loopback or in the region means nothing listens there any more (crashed, killed,
//   restarting), and the second check, on a new connection 20 ms later, rules out a keep-alive race. A crash
//   is out in ~0.12 s on average, ~0.23 s at worst. A hung instance takes two `timeoutMs` (passive
//   timeouts on its real requests eject it sooner).
// - rise stays slow: an instance that was taken out is ready again after 3 passed checks in a row at the
//   round's pace (0.4 s of successes at least; no fast checks on the way up). One never ready yet (new, or
//   moved to another URL) is ready on its first pass: it has no flapping to damp, and a restarted balancer
//   serves at once.
import type { Logger } from '../log.js';
import type { Pool } from './pool.js';
import { parseGauges } from './readiness/gauges.js';
import { createProbe, type Probe } from './readiness/probe.js';
import type { Instance } from './types.js';

export type ReadinessOptions = {
  pool: Pick<Pool, 'states' | 'setReady' | 'updateGpu'>;
  log: Logger;
  /** Pause between two rounds of checks. 200 unless set. */
  intervalMs?: number;
  /** Pause before the next check of a ready instance that failed one (HAProxy's `fastinter`). 20 (at most `intervalMs`) unless set. */
  fastIntervalMs?: number;
  /** Each check's deadline; a hung instance is not ready. 2000 unless set. */
  timeoutMs?: number;
  /** Passed checks in a row before an instance that was taken out is ready again (a new one needs one). 3 unless set. */
  rise?: number;
  /** Failed checks in a row without an answer (refused, reset, timed out) before a ready instance is not. 2 unless set. */
  fall?: number;
  /** Failed checks in a row that got an answer (a 5xx, a model not listed) before a ready instance is not. 10 unless set. */
  answeredFall?: number;
  /** Scrape `/metrics` into the pool's GPU gauges (on the rounds' checks, not the fast ones). true unless set. */
  scrapeMetrics?: boolean;
  /** GPU memory used/total at or above this reads as exhausted. 0.99 unless set. */
  memoryFullRatio?: number;
  now?: () => number;
  /** Called when an instance's readiness flips (the proxy's `wake` belongs here). */
  onChange?: (id: string, ready: boolean) => void;
};

export const READINESS_DEFAULTS = { intervalMs: 200, fastIntervalMs: 20, timeoutMs: 2000, rise: 3, fall: 2, answeredFall: 10 } as const;

export interface Readiness {
  /** Checks at once, then every `intervalMs` (and every `fastIntervalMs` while a ready instance fails). */
  start(): void;
  stop(): Promise<void>;
  /** One check of every instance; resolves when all are checked. */
  checkAll(): Promise<void>;
  /** Checks now the instances not ready (added or moved by a configuration change), without waiting for the next round. */
  checkNew(): Promise<void>;
}

/**
 * One instance's checks at the URL they were made at (an instance moved is judged afresh): passed and failed
 * in a row, whether it was ever ready, the check under way and the fast one due.
 */
type Track = { url: string; ok: number; failed: number; /** Of those, in a row without an answer. */ silent: number; everReady: boolean; busy?: Promise<void>; fast?: NodeJS.Timeout };

/** Counts one check into the streaks; the readiness they now call for, or undefined for no change. */
function judge(t: Track, why: string | undefined, silent: boolean, ready: boolean, limits: { rise: number; fall: number; answeredFall: number }): boolean | undefined {
  if (why) Object.assign(t, { ok: 0, failed: t.failed + 1, silent: silent ? t.silent + 1 : 0 });
  else Object.assign(t, { ok: t.ok + 1, failed: 0, silent: 0 });
  if (ready) t.everReady = true;
  if (!why && !ready && (t.ok >= limits.rise || !t.everReady)) return true;
  if (why && ready && (t.silent >= limits.fall || t.failed >= limits.answeredFall)) return false;
  return undefined;
}

/** `/metrics` into the pool's gauges; a failed scrape leaves the old ones to go stale. */
async function scrapeGauges(probe: Probe, inst: Instance, opts: ReadinessOptions, log: Logger): Promise<void> {
  try {
    const text = await probe.metrics(inst);
    if (text === undefined) return;
    const g = parseGauges(text, { now: (opts.now ?? Date.now)(), memoryFullRatio: opts.memoryFullRatio });
    // No fresh gauges is not "idle": the picker treats stale gauges as saturated.
    if (g) opts.pool.updateGpu(inst.id, g);
  } catch (err) {
    log.debug({ instance: inst.id, err }, 'metrics scrape failed');
  }
}

/**
 * Active readiness: an instance takes traffic only once `/health` is 200
 * and `/v1/models` lists every model it is configured for, so a server that
 * is up but still loading its weights gets nothing.
 */
export function createReadiness(opts: ReadinessOptions): Readiness {
  const log = opts.log.child({ component: 'balancer-readiness' });
  const d = READINESS_DEFAULTS;
  const intervalMs = opts.intervalMs ?? d.intervalMs;
  const fastIntervalMs = Math.min(opts.fastIntervalMs ?? d.fastIntervalMs, intervalMs);
  const timeoutMs = opts.timeoutMs ?? d.timeoutMs;
  const limits = { rise: opts.rise ?? d.rise, fall: opts.fall ?? d.fall, answeredFall: opts.answeredFall ?? d.answeredFall };
  const now = opts.now ?? Date.now;
  const probe = createProbe({ intervalMs, timeoutMs });
  const tracks = new Map<string, Track>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = true;

  function trackOf(inst: Instance): Track {
    const old = tracks.get(inst.id);
    if (old?.url === inst.url) return old;
    clearTimeout(old?.fast);
    const t: Track = { url: inst.url, ok: 0, failed: 0, silent: 0, everReady: false };
    tracks.set(inst.id, t);
    return t;
  }

  /** Checks `inst` unless a check of it is under way already (then that one's end). */
  function check(inst: Instance, scrape: boolean): Promise<void> {
    const t = trackOf(inst);
    if (t.busy) return t.busy;
    const p = run(inst, t, scrape)
      .catch((err: unknown) => log.debug({ instance: inst.id, err }, 'readiness check failed to run'))
      .finally(() => {
        if (t.busy === p) t.busy = undefined;
      });
    t.busy = p;
    return p;
  }

  async function run(inst: Instance, t: Track, scrape: boolean): Promise<void> {
    let why: string | undefined;
    let silent = false;
    try {
      why = await probe.ready(inst);
    } catch (err) {
      why = (err as { code?: string }).code ?? (err as Error).message;
      silent = true;
    }
    const state = opts.pool.states().find((s) => s.instance.id === inst.id && s.instance.url === inst.url);
    if (!state || tracks.get(inst.id) !== t) return; // removed or moved meanwhile
    const flip = judge(t, why, silent, state.ready, limits);
    if (flip !== undefined && opts.pool.setReady(inst.id, flip, now())) {
      if (flip) t.everReady = true;
      log.info({ instance: inst.id, ready: flip, reason: why, failedChecks: t.failed }, flip ? 'instance ready' : 'instance not ready');
      opts.onChange?.(inst.id, flip);
    } else if (why && state.ready && !stopped) {
      // Failing while ready: the next check comes soon, to confirm the fall or clear it.
      log.debug({ instance: inst.id, reason: why, failedChecks: t.failed }, 'readiness check failed');
      clearTimeout(t.fast);
      t.fast = setTimeout(() => {
        t.fast = undefined;
        if (!stopped) void check(inst, false);
      }, fastIntervalMs).unref();
    }
    if (scrape && (opts.scrapeMetrics ?? true)) await scrapeGauges(probe, inst, opts, log);
  }

  /** The pool's instances now; what is kept of the others is dropped. */
  function current(): Instance[] {
    const instances = opts.pool.states().map((s) => s.instance);
    const ids = new Set(instances.map((i) => i.id));
    for (const [id, t] of tracks)
      if (!ids.has(id)) {
        clearTimeout(t.fast);
        tracks.delete(id);
      }
    return instances;
  }

  /** A round: every instance not being checked already, or about to be (a fast check due). */
  function round(): void {
    for (const inst of current()) {
      const t = tracks.get(inst.id);
      if (t?.url === inst.url && (t.busy || t.fast)) continue;
      void check(inst, true);
    }
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      round();
      timer = setInterval(round, intervalMs).unref();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      for (const t of tracks.values()) clearTimeout(t.fast);
      await Promise.all([...tracks.values()].flatMap((t) => (t.busy ? [t.busy] : [])));
      await probe.close();
    },
    async checkAll() {
      await Promise.all(current().map((inst) => check(inst, true)));
    },
    async checkNew() {
      // Not ready yet: new, or moved to another URL. A failing instance checked once more changes nothing.
      const fresh = opts.pool.states().filter((s) => !s.ready);
      await Promise.all(fresh.map((s) => check(s.instance, true)));
    },
  };
}
