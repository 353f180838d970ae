import { BLOCK_TOKENS } from '../prompt/blocks.js';
import type { Gauges } from './engine.js';

/** Prometheus text in vLLM's names, so scrapers written for vLLM read the simulator too. */
export function metricsText(model: string, g: Gauges): string {
  const label = `{model_name="${model.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"}`;
  const gauge = (name: string, help: string, value: number) =>
    `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name}${label} ${value}\n`;
  // Extras only when known (and finite: an unlimited cache has no size to report).
  const optional = (name: string, help: string, value: number | undefined) =>
    value === undefined || !Number.isFinite(value) ? '' : gauge(name, help, value);
  // vLLM's prefix-cache counters, in tokens, from 0 at each (re)start: a scraper that sees them go back knows the cache was emptied.
  const counter = (name: string, help: string, value: number | undefined) =>
    value === undefined ? '' : `# HELP ${name} ${help}\n# TYPE ${name} counter\n${name}${label} ${value}\n`;
  return (
    gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', g.running) +
    gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', g.waiting) +
    gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', g.kvCacheUsage) +
    cacheConfig(label, g.kvCacheTokens) +
    optional('arus_sim_kv_cache_tokens_used', 'KV-cache tokens held by running sequences.', g.kvCacheTokensUsed) +
    optional('arus_sim_kv_cache_tokens_total', 'KV-cache size in tokens.', g.kvCacheTokens) +
    optional('arus_sim_gpu_memory_used_bytes', 'GPU memory in use (the whole device under an oom fault).', g.gpuMemoryUsedBytes) +
    optional('arus_sim_gpu_memory_total_bytes', 'GPU memory on the device.', g.gpuMemoryTotalBytes) +
    counter('vllm:prefix_cache_queries_total', 'Prefix cache queries, in terms of number of queried tokens.', g.prefixCacheQueries) +
    counter('vllm:prefix_cache_hits_total', 'Prefix cache hits, in terms of number of cached tokens.', g.prefixCacheHits)
  );
}

/** vLLM's `vllm:cache_config_info`: its block size and the blocks its KV cache has, as labels of a gauge of 1 (only for a finite cache). */
function cacheConfig(label: string, tokens: number | undefined): string {
  if (tokens === undefined || !Number.isFinite(tokens)) return '';
  const name = 'vllm:cache_config_info';
  return `# HELP ${name} Information of the LLMEngine CacheConfig\n# TYPE ${name} gauge\n${name}${label.slice(0, -1)},block_size="${BLOCK_TOKENS}",num_gpu_blocks="${Math.floor(tokens / BLOCK_TOKENS)}"} 1\n`;
}
