// Rounds of readiness checks over every instance: rise/fall streaks flip its
// readiness in the pool, and its gauges are scraped on the way. What an
// instance is asked is in readiness/probe.ts; how its metrics are read, in
// readiness/gauges.ts.
import type { Logger } from '../log.js';
import type { Pool } from './pool.js';
import { parseGauges } from './readiness/gauges.js';
import { createProbe } from './readiness/probe.js';
import type { Instance } from './types.js';

export type ReadinessOptions = {
  pool: Pick<Pool, 'states' | 'setReady' | 'updateGpu'>;
  log: Logger;
  /** Pause between two rounds of checks. 500 unless set (as the probe agents): with fall 2 a dead instance is out within about a second. */
  intervalMs?: number;
  /** Each check's deadline; a hung instance is not ready. 2000 unless set. */
  timeoutMs?: number;
  /** Passed checks in a row before an instance is ready. 1 unless set. */
  rise?: number;
  /** Failed checks in a row (no answer: refused, reset, timed out) before a ready instance is not. 2 unless set. */
  fall?: number;
  /**
   * Failed checks in a row that got an answer (a 5xx, a model not listed) before a ready instance is not. 4 unless
   * set: a check is two requests, so with 10 % of requests failing at random one fails 19 % of the time, and 4 in a
   * row (0.13 % a round, one every ~6 min per instance) must also meet the other instances' to leave a region without
   * any (about once in 40 h for two instances): the balancer's word takes a region out (control/balancer-evidence.ts).
   * A server that stops answering is out after `fall`.
   */
  answeredFall?: number;
  /** Scrape `/metrics` into the pool's GPU gauges. true unless set. */
  scrapeMetrics?: boolean;
  /** GPU memory used/total at or above this reads as exhausted. 0.99 unless set. */
  memoryFullRatio?: number;
  now?: () => number;
  /** Called when an instance's readiness flips (the proxy's `wake` belongs here). */
  onChange?: (id: string, ready: boolean) => void;
};

export interface Readiness {
  /** Checks at once, then every `intervalMs`. */
  start(): void;
  stop(): Promise<void>;
  /** One round over every instance; resolves when all are checked. */
  checkAll(): Promise<void>;
  /** Checks now the instances not ready (added or moved by a configuration change), without waiting for the next round. */
  checkNew(): Promise<void>;
}

/** Checks passed and failed in a row, at the URL they were made at (an instance moved is judged afresh). */
type Streak = { ok: number; failed: number; /** Of those, in a row without an answer. */ silent: number; url: string };

/**
 * Active readiness: an instance takes traffic only once `/health` is 200
 * and `/v1/models` lists every model it is configured for, so a server that
 * is up but still loading its weights gets nothing.
 */
export function createReadiness(opts: ReadinessOptions): Readiness {
  const log = opts.log.child({ component: 'balancer-readiness' });
  const intervalMs = opts.intervalMs ?? 500;
  const timeoutMs = opts.timeoutMs ?? 2000;
  const rise = opts.rise ?? 1;
  const fall = opts.fall ?? 2;
  const answeredFall = opts.answeredFall ?? 4;
  const now = opts.now ?? Date.now;
  const probe = createProbe({ intervalMs, timeoutMs });
  const streaks = new Map<string, Streak>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = true;

  async function check(inst: Instance): Promise<void> {
    let why: string | undefined;
    let silent = false;
    try {
      why = await probe.ready(inst);
    } catch (err) {
      why = (err as { code?: string }).code ?? (err as Error).message;
      silent = true;
    }
    const old = streaks.get(inst.id);
    const st = old?.url === inst.url ? old : { ok: 0, failed: 0, silent: 0, url: inst.url };
    streaks.set(inst.id, why ? { ok: 0, failed: st.failed + 1, silent: silent ? st.silent + 1 : 0, url: inst.url } : { ok: st.ok + 1, failed: 0, silent: 0, url: inst.url });
    const s = streaks.get(inst.id)!;
    let flip: boolean | undefined;
    if (!why && s.ok >= rise) flip = true;
    if (why && (s.silent >= fall || s.failed >= answeredFall)) flip = false;
    if (flip !== undefined && opts.pool.setReady(inst.id, flip, now())) {
      log.info({ instance: inst.id, ready: flip, reason: why }, flip ? 'instance ready' : 'instance not ready');
      opts.onChange?.(inst.id, flip);
    }
    if (opts.scrapeMetrics ?? true) await scrape(inst);
  }

  async function scrape(inst: Instance): Promise<void> {
    try {
      const text = await probe.metrics(inst);
      if (text === undefined) return;
      const g = parseGauges(text, { now: now(), memoryFullRatio: opts.memoryFullRatio });
      // No fresh gauges is not "idle": the picker treats stale gauges as saturated.
      if (g) opts.pool.updateGpu(inst.id, g);
    } catch (err) {
      log.debug({ instance: inst.id, err }, 'metrics scrape failed');
    }
  }

  async function checkAll(): Promise<void> {
    const instances = opts.pool.states().map((s) => s.instance);
    const ids = new Set(instances.map((i) => i.id));
    for (const id of streaks.keys()) if (!ids.has(id)) streaks.delete(id);
    await Promise.all(instances.map(check));
  }

  function loop(): void {
    running = checkAll().finally(() => {
      running = undefined;
      if (!stopped) timer = setTimeout(loop, intervalMs).unref();
    });
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      loop();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      await probe.close();
    },
    checkAll,
    async checkNew() {
      // Not ready yet: new, or moved to another URL. A failing instance checked once more changes nothing.
      const fresh = opts.pool.states().filter((s) => !s.ready);
      await Promise.all(fresh.map((s) => check(s.instance)));
    },
  };
}
