import { Agent } from 'undici';
import type { Logger } from '../log.js';
import type { Pool } from './pool.js';
import type { GpuGauges, Instance } from './types.js';

export type ReadinessOptions = {
  pool: Pick<Pool, 'states' | 'setReady' | 'updateGpu'>;
  log: Logger;
  /** Pause between two rounds of checks. 500 unless set (as the probe agents): with fall 2 a dead instance is out within about a second. */
  intervalMs?: number;
  /** Each check's deadline; a hung instance is not ready. 2000 unless set. */
  timeoutMs?: number;
  /** Passed checks in a row before an instance is ready. 1 unless set. */
  rise?: number;
  /** Failed checks in a row before a ready instance is not. 2 unless set. */
  fall?: number;
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
}

type Streak = { ok: number; failed: number };

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
  const now = opts.now ?? Date.now;
  const agent = new Agent({ keepAliveTimeout: Math.max(intervalMs * 2, 4000), headersTimeout: timeoutMs, bodyTimeout: timeoutMs, connect: { timeout: timeoutMs } });
  const streaks = new Map<string, Streak>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = true;

  async function get(inst: Instance, path: string): Promise<{ status: number; text: string }> {
    const res = await agent.request({ origin: inst.url, path, method: 'GET', signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.statusCode, text: await res.body.text() };
  }

  async function ready(inst: Instance): Promise<string | undefined> {
    const health = await get(inst, '/health');
    if (health.status !== 200) return `/health answered ${health.status}`;
    const models = await get(inst, '/v1/models');
    if (models.status !== 200) return `/v1/models answered ${models.status}`;
    const listed = new Set((JSON.parse(models.text) as { data?: { id?: unknown }[] }).data?.map((m) => m.id));
    const missing = inst.models.filter((m) => !listed.has(m));
    return missing.length ? `models not loaded: ${missing.join(', ')}` : undefined;
  }

  async function check(inst: Instance): Promise<void> {
    let why: string | undefined;
    try {
      why = await ready(inst);
    } catch (err) {
      why = (err as { code?: string }).code ?? (err as Error).message;
    }
    const st = streaks.get(inst.id) ?? { ok: 0, failed: 0 };
    streaks.set(inst.id, why ? { ok: 0, failed: st.failed + 1 } : { ok: st.ok + 1, failed: 0 });
    const s = streaks.get(inst.id)!;
    let flip: boolean | undefined;
    if (!why && s.ok >= rise) flip = true;
    if (why && s.failed >= fall) flip = false;
    if (flip !== undefined && opts.pool.setReady(inst.id, flip, now())) {
      log.info({ instance: inst.id, ready: flip, reason: why }, flip ? 'instance ready' : 'instance not ready');
      opts.onChange?.(inst.id, flip);
    }
    if (opts.scrapeMetrics ?? true) await scrape(inst);
  }

  async function scrape(inst: Instance): Promise<void> {
    try {
      const res = await get(inst, '/metrics');
      if (res.status !== 200) return;
      const g = parseGauges(res.text, { now: now(), memoryFullRatio: opts.memoryFullRatio });
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
      await agent.close();
    },
    checkAll,
  };
}

/**
 * Reads vLLM's gauges from Prometheus text, summed over models: requests
 * running and waiting, KV-cache usage (`vllm:kv_cache_usage_perc`, or
 * the older `vllm:gpu_cache_usage_perc`), and GPU memory when the server
 * reports it (the simulator's `arus_sim_gpu_memory_{used,total}_bytes`, or
 * DCGM's `DCGM_FI_DEV_FB_{USED,FREE}`). Undefined when the vLLM gauges are missing.
 */
export function parseGauges(text: string, opts: { now: number; memoryFullRatio?: number }): GpuGauges | undefined {
  const sums = new Map<string, number>();
  const maxes = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v)) continue;
    sums.set(m[1], (sums.get(m[1]) ?? 0) + v);
    maxes.set(m[1], Math.max(maxes.get(m[1]) ?? -Infinity, v));
  }
  const running = sums.get('vllm:num_requests_running');
  const waiting = sums.get('vllm:num_requests_waiting');
  const kv = maxes.get('vllm:kv_cache_usage_perc') ?? maxes.get('vllm:gpu_cache_usage_perc');
  if (running === undefined || waiting === undefined || kv === undefined) return undefined;

  const full = opts.memoryFullRatio ?? 0.99;
  let memoryExhausted = false;
  const used = sums.get('arus_sim_gpu_memory_used_bytes');
  const total = sums.get('arus_sim_gpu_memory_total_bytes');
  if (used !== undefined && total) memoryExhausted = used / total >= full;
  const fbUsed = sums.get('DCGM_FI_DEV_FB_USED');
  const fbFree = sums.get('DCGM_FI_DEV_FB_FREE');
  if (fbUsed !== undefined && fbFree !== undefined && fbUsed + fbFree > 0) memoryExhausted ||= fbUsed / (fbUsed + fbFree) >= full;
  return { running, waiting, kvCacheUsage: Math.min(1, Math.max(0, kv)), memoryExhausted, scrapedAt: opts.now };
}
