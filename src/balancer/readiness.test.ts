import { describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { createSimServer } from '../sim/server.js';
import { roundRobin } from './pickers/round-robin.js';
import { createPool } from './pool.js';
import { createReadiness } from './readiness.js';
import { parseGauges } from './readiness/gauges.js';

// Readiness against real sim servers is exercised in proxy.test.ts too.
describe('readiness fall', () => {
  it('takes an instance that answers with errors out after 4 failed rounds, one that stops answering after 2', async () => {
    const sims = [createSimServer({ log: silentLogger() }), createSimServer({ log: silentLogger() })];
    const ports = await Promise.all(sims.map(async (s) => (await s.start()).port));
    const pool = createPool({ instances: ports.map((p, i) => ({ id: `i${i}`, url: `http://127.0.0.1:${p}`, weight: 100, models: ['llama-3-8b'], kinds: ['chat'] })), picker: roundRobin() });
    const readiness = createReadiness({ pool, log: silentLogger(), scrapeMetrics: false });
    try {
      await readiness.checkAll();
      expect(pool.states().map((s) => s.ready)).toEqual([true, true]);
      await sims[0].setFault({ kind: 'error' });
      await sims[1].setFault({ kind: 'crash' });
      const rounds: boolean[][] = [];
      for (let r = 0; r < 4; r++) {
        await readiness.checkAll();
        rounds.push(pool.states().map((s) => s.ready));
      }
      // Refused: out at the second round. Answering 500: out at the fourth (10 % random errors rarely make four in a row).
      expect(rounds).toEqual([[true, true], [true, false], [true, false], [false, false]]);
    } finally {
      await readiness.stop();
      await Promise.all(sims.map((s) => s.stop()));
    }
  });
});

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
    [
      "vLLM's prefix counter and cache size",
      `${vllm(0, 0, 0)}\nvllm:prefix_cache_queries_total{model_name="m"} 1234\nvllm:cache_config_info{model_name="m",block_size="16",num_gpu_blocks="2048"} 1`,
      { prefixQueries: 1234, kvBlocks: 2048 },
    ],
  ])('%s', (_name, text, want) => {
    expect(parseGauges(text, { now: 42 })).toMatchObject({ ...want, scrapedAt: 42 });
  });

  it('is undefined when a vLLM gauge is missing or garbled', () => {
    expect(parseGauges('', { now: 0 })).toBeUndefined();
    expect(parseGauges(vllm(1, 1, 0.1).replace(/vllm:num_requests_waiting.*\n/, ''), { now: 0 })).toBeUndefined();
    expect(parseGauges(vllm(1, 1, 0.1).replace('} 0.1', '} NaN'), { now: 0 })).toBeUndefined();
  });
});
