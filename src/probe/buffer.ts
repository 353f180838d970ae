import type { ProbeResult } from './types.js';

/**
 * Results not yet accepted by control, oldest first, bounded by age: while
 * control is away the agent keeps the last `windowMs` of results and drops
 * older ones (stale evidence is worse than none). `maxResults` is a backstop
 * against a huge target list.
 */
export interface ResultBuffer {
  push(results: ProbeResult[]): void;
  /** The oldest still fresh (at most `max`), and a mark to `ack` once control has taken them. */
  peek(max?: number): { results: ProbeResult[]; mark: number };
  /** Forgets every result up to the mark (results pushed since stay). */
  ack(mark: number): void;
  readonly size: number;
  /** Results dropped unsent, in total. */
  readonly dropped: number;
}

export function createResultBuffer(opts: { windowMs: number; maxResults?: number; now?: () => number }): ResultBuffer {
  const now = opts.now ?? Date.now;
  const max = opts.maxResults ?? 100_000;
  let items: { seq: number; result: ProbeResult }[] = [];
  let seq = 0;
  let dropped = 0;

  function prune(): void {
    const cutoff = now() - opts.windowMs;
    let n = 0;
    while (n < items.length && (items[n].result.at < cutoff || items.length - n > max)) n++;
    if (n > 0) {
      items = items.slice(n);
      dropped += n;
    }
  }

  return {
    push(results) {
      for (const result of results) items.push({ seq: ++seq, result });
      prune();
    },
    peek(limit = Infinity) {
      prune();
      const taken = items.length > limit ? items.slice(0, limit) : items;
      return { results: taken.map((i) => i.result), mark: taken.length < items.length ? taken[taken.length - 1]?.seq ?? 0 : seq };
    },
    ack(mark) {
      const n = items.findIndex((i) => i.seq > mark);
      items = n < 0 ? [] : items.slice(n);
    },
    get size() {
      return items.length;
    },
    get dropped() {
      return dropped;
    },
  };
}
