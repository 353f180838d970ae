// Reading an instance's load from its `/metrics`: vLLM's gauges, and GPU
// memory from the simulator or DCGM, out of Prometheus text.
import type { GpuGauges } from '../types.js';

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
  const prefixQueries = sums.get('vllm:prefix_cache_queries_total') ?? sums.get('vllm:gpu_prefix_cache_queries_total');
  // vLLM's cache configuration, as labels: the KV cache's size in blocks.
  const blocks = /^vllm:cache_config_info\{[^}]*\bnum_gpu_blocks="(\d+)"/m.exec(text);
  const kvBlocks = blocks ? Number(blocks[1]) : undefined;
  return {
    running,
    waiting,
    kvCacheUsage: Math.min(1, Math.max(0, kv)),
    memoryExhausted,
    scrapedAt: opts.now,
    ...(prefixQueries !== undefined ? { prefixQueries } : {}),
    ...(kvBlocks !== undefined && kvBlocks > 0 ? { kvBlocks } : {}),
  };
}
