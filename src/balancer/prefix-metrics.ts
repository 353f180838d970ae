// The `prefix` strategy in /metrics: its index (entries, bytes against the
// cap), the hit it expected (prompt tokens sent, and those it expected the
// instances to hold: divide for the hit estimate), and its decisions. Read
// from the pool's picker at each scrape; zero under another strategy.
import { Counter, type Registry } from 'prom-client';
import { readCounter, readGauge } from './read-metrics.js';
import { PREFIX_DECISIONS, type PrefixStats } from './types.js';


export function registerPrefixMetrics(registry: Registry, stats: () => PrefixStats | undefined): void {
  const of = (read: (s: PrefixStats) => number) => () => {
    const s = stats();
    return s && read(s);
  };
  readGauge(registry, 'arus_balancer_prefix_index_entries', 'Blocks the prefix index holds, every instance', of((s) => s.entries));
  readGauge(registry, 'arus_balancer_prefix_index_bytes', 'Estimated memory of the prefix index (64 bytes an entry)', of((s) => s.bytes));
  readGauge(registry, 'arus_balancer_prefix_index_capacity_entries', 'The most blocks the prefix index may hold (its memory cap)', of((s) => s.capacity));
  readCounter(registry, 'arus_balancer_prefix_prompt_tokens_total', 'Prompt tokens of the requests the prefix strategy sent', of((s) => s.promptTokens));
  readCounter(registry, 'arus_balancer_prefix_predicted_hit_tokens_total', 'Of those, the tokens it expected the chosen instance to have cached', of((s) => s.predictedHitTokens));
  new Counter({
    name: 'arus_balancer_prefix_decisions_total',
    help: 'Prefix strategy picks: cache (where the prefix is), spread (off a busy holder), hash (nothing cached: consistent hash), load (no prompt)',
    labelNames: ['decision'],
    registers: [registry],
    collect() {
      this.reset();
      const s = stats();
      for (const d of PREFIX_DECISIONS) this.inc({ decision: d }, s?.decisions[d] ?? 0);
    },
  });
}
