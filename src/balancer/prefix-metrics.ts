// The `prefix` strategy in /metrics: its index (entries, bytes against the
// cap), the hit it expected (prompt tokens sent, and those it expected the
// instances to hold: divide for the hit estimate), and its decisions. Read
// from the pool's picker at each scrape; zero under another strategy.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { PrefixDecision, PrefixStats } from './types.js';

const DECISIONS: readonly PrefixDecision[] = ['cache', 'spread', 'hash', 'load'];

export function registerPrefixMetrics(registry: Registry, stats: () => PrefixStats | undefined): void {
  const gauge = (name: string, help: string, read: (s: PrefixStats) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const s = stats();
        this.set(s ? read(s) : 0);
      },
    });
  gauge('arus_balancer_prefix_index_entries', 'Blocks the prefix index holds, every instance', (s) => s.entries);
  gauge('arus_balancer_prefix_index_bytes', 'Estimated memory of the prefix index (64 bytes an entry)', (s) => s.bytes);
  gauge('arus_balancer_prefix_index_capacity_entries', 'The most blocks the prefix index may hold (its memory cap)', (s) => s.capacity);
  const counter = (name: string, help: string, read: (s: PrefixStats) => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        const s = stats();
        this.inc(s ? read(s) : 0);
      },
    });
  counter('arus_balancer_prefix_prompt_tokens_total', 'Prompt tokens of the requests the prefix strategy sent', (s) => s.promptTokens);
  counter('arus_balancer_prefix_predicted_hit_tokens_total', 'Of those, the tokens it expected the chosen instance to have cached', (s) => s.predictedHitTokens);
  new Counter({
    name: 'arus_balancer_prefix_decisions_total',
    help: 'Prefix strategy picks: cache (where the prefix is), spread (off a busy holder), hash (nothing cached: consistent hash), load (no prompt)',
    labelNames: ['decision'],
    registers: [registry],
    collect() {
      this.reset();
      const s = stats();
      for (const d of DECISIONS) this.inc({ decision: d }, s?.decisions[d] ?? 0);
    },
  });
}
