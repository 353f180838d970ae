// The prefix strategy's added CPU per request, for an 8k-token chat prompt:
// reading the prompt (render + block names, proxy/request.ts promptKey), the
// pick over 4 instances and recording the send (pickers/prefix.ts), against
// the same request under the `gpu` strategy (no prompt read) and, as the
// yardstick, the JSON.parse of the body the proxy does for every strategy.
//
//   npm run bench:prefix-cpu        (BENCH_RUNS: 7 rounds of 2000 requests; the median round is quoted)
//
// Target (issue 19): under 50 µs added for an 8k-token prompt.
import { median } from './common.js';
import { gpu } from '../src/balancer/pickers/gpu.js';
import { prefix } from '../src/balancer/pickers/prefix.js';
import { promptKey } from '../src/balancer/proxy/request.js';
import type { InstanceState } from '../src/balancer/types.js';
import { tokensOf, renderPrompt } from '../src/prompt/blocks.js';

const runs = Number(process.env.BENCH_RUNS ?? 7);
const N = 2000;
const words = 'the model answers from a simulated gpu in southeast asia quickly and steadily while the batch decodes'.split(' ');
const textOf = (chars: number, seed: number) => {
  let t = '';
  for (let i = 0; t.length < chars; i++) t += `${words[(i * 7 + seed) % words.length]} `;
  return t.slice(0, chars);
};
// A conversation of 8k tokens: a 2k-token system prompt, then turns; each request is a later turn of one of 64 conversations.
const system = textOf(8000, 1);
const bodies = Array.from({ length: 64 }, (_, c) => {
  const messages = [{ role: 'system', content: system }];
  for (let t = 0; tokensOf(renderPrompt({ messages })!) < 8192; t++) messages.push({ role: t % 2 ? 'assistant' : 'user', content: textOf(1200, c * 31 + t) });
  return Buffer.from(JSON.stringify({ model: 'm', stream: true, max_tokens: 200, user: `conv-${c}`, messages }));
});
const hosts = (): InstanceState[] =>
  Array.from({ length: 4 }, (_, i) => ({
    instance: { id: `i${i}`, url: `http://i${i}`, weight: 100, models: ['m'], kinds: ['chat'] },
    ready: true,
    ejections: 0,
    consecutiveFailures: 0,
    outstanding: 2,
    slots: 8,
    unitMs: { generation: 20 },
    gpu: { running: 2, waiting: 0, kvCacheUsage: 0.3, memoryExhausted: false, scrapedAt: Date.now() },
  }));

function round(kind: 'parse' | 'gpu' | 'prefix'): number {
  const hs = hosts();
  const p = prefix();
  const g = gpu();
  const start = process.hrtime.bigint();
  let sink = 0;
  for (let i = 0; i < N; i++) {
    const raw = bodies[i % bodies.length];
    const body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    if (kind === 'parse') {
      sink += Object.keys(body).length;
      continue;
    }
    const now = Date.now();
    const ctx = { kind: 'chat' as const, tokens: 200, now, random: Math.random };
    if (kind === 'gpu') {
      sink += g.pick(hs, ctx) ? 1 : 0;
      continue;
    }
    const key = promptKey(body, undefined, raw.length);
    const s = p.pick(hs, { ...ctx, prompt: key })!;
    sink += p.sent!(s, { kind: 'chat', tokens: 200, at: now, prompt: key }) ?? 0;
  }
  if (sink < 0) console.log(sink);
  return Number(process.hrtime.bigint() - start) / N / 1000;
}

const tokens = tokensOf(renderPrompt(JSON.parse(bodies[0].toString()) as { messages: unknown })!);
const results: Record<string, number[]> = { parse: [], gpu: [], prefix: [] };
for (let r = 0; r < runs + 1; r++)
  for (const k of ['parse', 'gpu', 'prefix'] as const) {
    const us = round(k);
    if (r > 0) results[k].push(us); // the first round warms the JIT
  }
const [parse, g, p] = [median(results.parse), median(results.gpu), median(results.prefix)];
const added = p - g;
console.log(`prefix strategy CPU per request, ${tokens}-token chat prompt (${(bodies[0].length / 1024).toFixed(0)} KiB body), 4 instances, median of ${runs} rounds × ${N}:`);
console.log(`  JSON.parse of the body (every strategy, the yardstick)  ${parse.toFixed(1)} µs`);
console.log(`  gpu: parse + pick                                       ${g.toFixed(1)} µs`);
console.log(`  prefix: parse + prompt read + pick + record             ${p.toFixed(1)} µs`);
console.log(`  added by prefix over gpu                                ${added.toFixed(1)} µs (${(added / parse).toFixed(2)}× the parse) — target < 50 µs: ${added < 50 ? 'MET' : 'MISSED'}`);
