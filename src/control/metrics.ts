import { Counter, Gauge, type Registry } from 'prom-client';
import type { StorageFaultKind } from '../db/faults.js';
import type { ControlStats } from './control.js';

const KINDS: StorageFaultKind[] = ['busy', 'read-only', 'full', 'io', 'cannot-open', 'corrupt', 'unavailable'];

/** Control's faults and limits, read from its stats at every scrape. */
export function observeControl(registry: Registry, control: { stats(): ControlStats }, opts: { prefix?: string } = {}): void {
  const prefix = opts.prefix ?? 'arus_';
  const registers = [registry];
  const storageErrors: Counter<'kind'> = new Counter({
    name: `${prefix}storage_errors_total`,
    help: 'Writes the database refused (locked, read-only, disk full, I/O error...), by kind: the API answered 503 or control retried later.',
    labelNames: ['kind'],
    registers,
    collect() {
      storageErrors.reset();
      const f = control.stats().storage.faults;
      for (const kind of KINDS) storageErrors.inc({ kind }, f[kind]);
    },
  });
  const gauge = (name: string, help: string, read: (s: ControlStats) => number) => {
    const g: Gauge = new Gauge({ name: prefix + name, help, registers, collect: () => g.set(read(control.stats())) });
  };
  const counter = (name: string, help: string, read: (s: ControlStats) => number) => {
    const c: Counter = new Counter({ name: prefix + name, help, registers, collect: () => (c.reset(), c.inc(read(control.stats()))) });
  };
  gauge('storage_failing', '1 while the database refuses writes (control serves from memory and retries), else 0.', (s) => (s.storage.failing ? 1 : 0));
  gauge('storage_pending_events', 'Events kept in memory until the database takes them.', (s) => s.storage.pendingEvents);
  counter(
    'storage_writes_short_circuited_total',
    'Writes refused at once, without waiting on the lock, because the database was found locked a moment ago (the back-off).',
    (s) => s.storage.shortCircuited,
  );
  counter('storage_dropped_events_total', 'Events dropped because too many were kept while the database refused writes.', (s) => s.storage.droppedEvents);
  const refused: Counter<'reason'> = new Counter({
    name: `${prefix}probe_reports_refused_total`,
    help: 'Probe reports refused with 429: an agent over its rate, or a new agent past the limit of tracked agents.',
    labelNames: ['reason'],
    registers,
    collect() {
      refused.reset();
      const r = control.stats().probes.refused;
      refused.inc({ reason: 'rate' }, r.rate);
      refused.inc({ reason: 'agents' }, r.agents);
    },
  });
  counter('probe_results_not_stored_total', 'Raw probe results not kept: for no configured endpoint, or while the database refused writes.', (s) => s.probes.resultsNotStored);
  counter('probe_results_pruned_total', 'Raw probe results pruned oldest first because more than the row limit were kept.', (s) => s.probes.resultsPruned);
}
