import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { createSimServer } from '../sim/server.js';
import { roundRobin } from './pickers/round-robin.js';
import { createPool } from './pool.js';
import { createReadiness } from './readiness.js';
import { parseGauges } from './readiness/gauges.js';

// Readiness against real sim servers is exercised in proxy.test.ts and flap.test.ts too.
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** Two sims in a pool and readiness checks over them (not started), all stopped after the test. */
async function twoSims() {
  const sims = [createSimServer({ log: silentLogger() }), createSimServer({ log: silentLogger() })];
  const ports = await Promise.all(sims.map(async (s) => (await s.start()).port));
  cleanup.push(() => Promise.all(sims.map((s) => s.stop())).then(() => undefined));
  const pool = createPool({ instances: ports.map((p, i) => ({ id: `i${i}`, url: `http://127.0.0.1:${p}`, weight: 100, models: ['llama-3-8b'], kinds: ['chat'] })), picker: roundRobin() });
  const readiness = createReadiness({ pool, log: silentLogger(), scrapeMetrics: false });
  cleanup.push(() => readiness.stop());
  return { sims, pool, readiness };
}

describe('readiness fall and rise', () => {
  it('takes an instance that answers with errors out after 10 failed checks, one that stops answering after 2', async () => {
    const { sims, pool, readiness } = await twoSims();
    await readiness.checkAll();
    expect(pool.states().map((s) => s.ready)).toEqual([true, true]);
    await sims[0].setFault({ kind: 'error' });
    await sims[1].setFault({ kind: 'crash' });
    const rounds: boolean[][] = [];
    for (let r = 0; r < 10; r++) {
      await readiness.checkAll();
      rounds.push(pool.states().map((s) => s.ready));
    }
    // Refused: out at the second check. Answering 500: out at the tenth (10 % random errors make ten in a row once in days).
    expect(rounds).toEqual([[true, true], ...Array.from({ length: 8 }, () => [true, false]), [false, false]]);
  });

  it('checks a failing ready instance again at once: out in well under half a second, crashed or answering errors', async () => {
    const { sims, pool, readiness } = await twoSims();
    readiness.start();
    await until(() => pool.states().every((s) => s.ready));
    const t0 = performance.now();
    await sims[0].setFault({ kind: 'error' });
    await sims[1].setFault({ kind: 'crash' });
    const out: (number | undefined)[] = [undefined, undefined];
    await until(() => {
      pool.states().forEach((s, i) => {
        if (out[i] === undefined && !s.ready) out[i] = performance.now() - t0;
      });
      return out.every((x) => x !== undefined);
    });
    expect(out[0]).toBeLessThan(500); // 10 checks: one at the round (≤ 200 ms), nine 20 ms apart
    expect(out[1]).toBeLessThan(300); // 2 checks
  });

  it('readies a new instance at its first pass, one taken out only after 3 in a row', async () => {
    const { sims, pool, readiness } = await twoSims();
    await sims[0].setFault({ kind: 'error' });
    await readiness.checkAll();
    expect(pool.states().map((s) => s.ready)).toEqual([false, true]); // never ready: nothing to fall from
    await sims[0].setFault({ kind: 'none' });
    await readiness.checkAll();
    expect(pool.states()[0].ready).toBe(true); // new: ready at once
    await sims[1].setFault({ kind: 'crash' });
    await readiness.checkAll();
    await readiness.checkAll();
    expect(pool.states()[1].ready).toBe(false);
    await sims[1].setFault({ kind: 'none' }); // back on the same port
    const rounds: boolean[] = [];
    for (let r = 0; r < 3; r++) {
      await readiness.checkAll();
      rounds.push(pool.states()[1].ready);
    }
    expect(rounds).toEqual([false, false, true]);
  });
});

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

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
