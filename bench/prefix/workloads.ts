// The three workloads, drawn from a seed before any contender runs, so that
// every contender gets the same texts, arrivals, think times and answer
// lengths. Texts are words drawn at random: 4 characters are one token
// (src/prompt/blocks.ts), so a text of n tokens is 4n characters.
import { CHARS_PER_TOKEN } from '../../src/prompt/blocks.js';
import { seededRandom } from '../../src/steer/steer.js';
import { HOT, MULTI_TURN, RAG, RATES, type WorkloadName } from './settings.js';

type Random = () => number;
export type Message = { role: string; content: string };

/** One open-loop request: when (ms from the start), what, and what it shares (the oracle pins each group to an instance). */
export type Arrival = { at: number; messages: Message[]; maxTokens: number; group: string };
export type Turn = { user: string; maxTokens: number; thinkMs: number };
/** One conversation: it starts at `at`; each turn is sent `thinkMs` after the answer to the one before. */
export type Conversation = { at: number; id: string; system: string; group: string; turns: Turn[] };
/**
 * A workload: its schedule over `seconds`, and `prime`, requests sent (and
 * answered) before the schedule starts: a service in production has seen its
 * documents before, and an empty cache's first sight of a rare one is not
 * what a router is measured on.
 */
export type Workload =
  | { name: 'multi-turn'; conversations: Conversation[]; seconds: number; prime: Arrival[] }
  | { name: 'rag' | 'hot-prefix'; arrivals: Arrival[]; seconds: number; prime: Arrival[] };

const WORDS = (
  'the a of to and in is it that for on with as was at by be this from or an are not have which one you ' +
  'model cache prefix token region server latency request answer document question system prompt context ' +
  'river harbour island monsoon market ferry lantern rice spice temple garden bridge street night morning'
).split(' ');

/** About `tokens` tokens of words (4 characters each), drawn from `random`. */
export function text(random: Random, tokens: number): string {
  const target = tokens * CHARS_PER_TOKEN;
  let out = '';
  while (out.length < target) out += (out ? ' ' : '') + WORDS[Math.floor(random() * WORDS.length)];
  return out.slice(0, target);
}

const uniform = (random: Random, [lo, hi]: readonly [number, number]) => lo + Math.floor(random() * (hi - lo + 1));
const exponential = (random: Random, mean: number) => -Math.log(1 - random()) * mean;

/** Poisson arrival times (ms) at `rate` per second over `seconds`. */
function poisson(random: Random, rate: number, seconds: number): number[] {
  const out: number[] = [];
  for (let t = exponential(random, 1 / rate); t < seconds; t += exponential(random, 1 / rate)) out.push(t * 1000);
  return out;
}

function multiTurn(seconds: number, random: Random): Workload {
  const m = MULTI_TURN;
  const systems = Array.from({ length: m.systemPrompts }, (_, i) => `You are assistant ${i}. ${text(random, m.systemTokens)}`);
  const meanTurns = (m.minTurns + m.maxTurns) / 2;
  const conversations = poisson(random, RATES['multi-turn'] / meanTurns, seconds).map((at, i): Conversation => {
    const turns = Array.from({ length: uniform(random, [m.minTurns, m.maxTurns]) }, () => ({
      user: text(random, uniform(random, m.userTokens)),
      maxTokens: uniform(random, m.answerTokens),
      thinkMs: exponential(random, m.thinkMeanMs),
    }));
    return { at, id: `conv-${i}`, system: systems[Math.floor(random() * systems.length)], group: `conv-${i}`, turns };
  });
  return { name: 'multi-turn', conversations, seconds, prime: [] };
}

/** Zipf over `n` ranks with exponent `s`: rank k is drawn with probability ∝ 1 / (k + 1)^s. */
function zipf(random: Random, n: number, s: number): () => number {
  const cdf: number[] = [];
  let sum = 0;
  for (let k = 0; k < n; k++) cdf.push((sum += 1 / (k + 1) ** s));
  return () => {
    const u = random() * sum;
    const k = cdf.findIndex((c) => u < c);
    return k < 0 ? n - 1 : k;
  };
}

function rag(seconds: number, random: Random): Workload {
  const docs = Array.from({ length: RAG.documents }, (_, i) => `Document ${i}.\n${text(random, RAG.documentTokens)}`);
  const draw = zipf(random, RAG.documents, RAG.zipfS);
  const ask = (at: number, d: number): Arrival => ({
    at,
    group: `doc-${d}`,
    maxTokens: uniform(random, RAG.answerTokens),
    messages: [
      { role: 'system', content: 'Answer from the document below.' },
      { role: 'user', content: `${docs[d]}\n\nQuestion: ${text(random, uniform(random, RAG.questionTokens))}?` },
    ],
  });
  const prime = docs.map((_, d) => ask(0, d));
  return { name: 'rag', arrivals: poisson(random, RATES.rag, seconds).map((at) => ask(at, draw())), seconds, prime };
}

function hotPrefix(seconds: number, random: Random): Workload {
  const hot = `You are the hot assistant. ${text(random, HOT.systemTokens)}`;
  const arrivals = poisson(random, RATES['hot-prefix'], seconds).map((at, i): Arrival => {
    const maxTokens = uniform(random, HOT.answerTokens);
    if (random() < HOT.hotShare)
      return { at, group: 'hot', maxTokens, messages: [{ role: 'system', content: hot }, { role: 'user', content: text(random, uniform(random, HOT.questionTokens)) }] };
    return { at, group: `unique-${i}`, maxTokens, messages: [{ role: 'user', content: `Request ${i}. ${text(random, uniform(random, HOT.uniqueTokens))}` }] };
  });
  return { name: 'hot-prefix', arrivals, seconds, prime: [] };
}

/** The workload `name` over `seconds` (warm-up included), the same for every seed. */
export function workload(name: WorkloadName, seconds: number, seed = 2026): Workload {
  const random = seededRandom(seed);
  if (name === 'multi-turn') return multiTurn(seconds, random);
  if (name === 'rag') return rag(seconds, random);
  return hotPrefix(seconds, random);
}

/** How many requests the workload offers over its schedule (multi-turn: every turn of every conversation). */
export function offered(w: Workload): number {
  return w.name === 'multi-turn' ? w.conversations.reduce((n, c) => n + c.turns.length, 0) : w.arrivals.length;
}
