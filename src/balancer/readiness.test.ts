import { describe, expect, it } from 'vitest';
import { parseGauges } from './readiness/gauges.js';

// Readiness against real sim servers is exercised in proxy.test.ts; this is the scrape parser.

const vllm = (running: number, waiting: number, kv: number, model = 'm') =>
  [
    '# HELP vllm:num_requests_running Number of requests in model execution batches.',
    '# TYPE vllm:num_requests_running gauge',
    `vllm:num_requests_running{model_name="${model}"} ${running}`,
    `vllm:num_requests_waiting{model_name="${model}"} ${waiting}`,
    `vllm:kv_cache_usage_perc{model_name="${model}"} ${kv}`,
  ].join('\n');

describe('parseGauges', () => {
  it.each([
    ['vLLM gauges', vllm(3, 1, 0.25), { running: 3, waiting: 1, kvCacheUsage: 0.25, memoryExhausted: false }],
    ['summed over models, KV usage the fuller one', `${vllm(2, 0, 0.5, 'a')}\n${vllm(1, 4, 0.75, 'b')}`, { running: 3, waiting: 4, kvCacheUsage: 0.75 }],
    ['the older KV name', vllm(0, 0, 0).replace('kv_cache_usage_perc', 'gpu_cache_usage_perc') + '\n', { kvCacheUsage: 0 }],
    ['sim GPU memory below full', `${vllm(0, 0, 0)}\narus_sim_gpu_memory_used_bytes{model_name="m"} 90\narus_sim_gpu_memory_total_bytes{model_name="m"} 100`, { memoryExhausted: false }],
    ['sim GPU memory full', `${vllm(0, 0, 0)}\narus_sim_gpu_memory_used_bytes{model_name="m"} 100\narus_sim_gpu_memory_total_bytes{model_name="m"} 100`, { memoryExhausted: true }],
    ['DCGM frame buffer full', `${vllm(0, 0, 0)}\nDCGM_FI_DEV_FB_USED{gpu="0"} 81000\nDCGM_FI_DEV_FB_FREE{gpu="0"} 20`, { memoryExhausted: true }],
    ['out-of-range usage clamped', vllm(0, 0, 1.7), { kvCacheUsage: 1 }],
  ])('%s', (_name, text, want) => {
    expect(parseGauges(text, { now: 42 })).toMatchObject({ ...want, scrapedAt: 42 });
  });

  it('is undefined when a vLLM gauge is missing or garbled', () => {
    expect(parseGauges('', { now: 0 })).toBeUndefined();
    expect(parseGauges(vllm(1, 1, 0.1).replace(/vllm:num_requests_waiting.*\n/, ''), { now: 0 })).toBeUndefined();
    expect(parseGauges(vllm(1, 1, 0.1).replace('} 0.1', '} NaN'), { now: 0 })).toBeUndefined();
  });
});
