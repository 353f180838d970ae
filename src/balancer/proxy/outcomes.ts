// Outcomes of upstream attempts: each goes back to the pool (health, load,
// service time), frees a slot for the wait queue, and feeds the
// per-instance counters and recent latencies that `stats()` shows.
import type { Outcome, Pool } from '../pool.js';
import type { WaitQueue } from '../queue.js';
import type { InstanceState } from '../types.js';

export type InstanceRecord = { requests: number; failures: number; latencyMs: number[]; next: number };

export interface Outcomes {
  record(s: InstanceState, o: Outcome): void;
  /** What was recorded for an instance, if anything. */
  of(id: string): InstanceRecord | undefined;
}

const LATENCY_SAMPLES = 256;

export function createOutcomes(deps: { pool: Pick<Pool, 'release'>; queue: Pick<WaitQueue, 'wake'> }): Outcomes {
  const perInstance = new Map<string, InstanceRecord>();
  return {
    record(s, o) {
      deps.pool.release(s, o);
      deps.queue.wake();
      let st = perInstance.get(s.instance.id);
      if (!st) perInstance.set(s.instance.id, (st = { requests: 0, failures: 0, latencyMs: [], next: 0 }));
      st.requests++;
      if (!o.ok) st.failures++;
      // A ring of recent samples: bounded, however long the balancer runs.
      if (st.latencyMs.length < LATENCY_SAMPLES) st.latencyMs.push(o.durationMs);
      else st.latencyMs[st.next] = o.durationMs;
      st.next = (st.next + 1) % LATENCY_SAMPLES;
    },
    of: (id) => perInstance.get(id),
  };
}
