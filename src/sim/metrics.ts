import type { Gauges } from './engine.js';

/** Prometheus text in vLLM's names, so scrapers written for vLLM read the simulator too. */
export function metricsText(model: string, g: Gauges): string {
  const label = `{model_name="${model.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"}`;
  const gauge = (name: string, help: string, value: number) =>
    `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name}${label} ${value}\n`;
  return (
    gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', g.running) +
    gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', g.waiting) +
    gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', g.kvCacheUsage)
  );
}
