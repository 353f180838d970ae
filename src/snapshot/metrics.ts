import { Counter, Gauge, type Registry } from 'prom-client';
import type { ControlSourceStats } from './control-source.js';

/** A DNS node's snapshot metrics, read from its source at every scrape. */
export function observeControlSource(registry: Registry, source: { stats(): ControlSourceStats }, opts: { prefix?: string; now?: () => number } = {}): void {
  const prefix = opts.prefix ?? 'arus_';
  const now = opts.now ?? Date.now;
  const registers = [registry];
  const counted = (name: string, help: string, field: 'applied' | 'rejected') => {
    const counter: Counter<'source'> = new Counter({
      name: prefix + name,
      help,
      labelNames: ['source'],
      registers,
      collect() {
        counter.reset();
        const s = source.stats()[field];
        counter.inc({ source: 'control' }, s.control);
        counter.inc({ source: 'disk' }, s.disk);
      },
    });
  };
  counted('snapshot_applied_total', 'Snapshots validated and swapped in, by where they came from (control, or the file at start).', 'applied');
  counted('snapshot_rejected_total', 'Snapshots refused (bad checksum, invalid configuration or health) and not applied; the node kept the one it had.', 'rejected');
  const older: Counter<'control'> = new Counter({
    name: `${prefix}snapshot_older_total`,
    help: 'Valid snapshots refused for being older than the one held, by the replica that sent them (it lags); the node kept the one it had.',
    labelNames: ['control'],
    registers,
    collect() {
      older.reset();
      for (const r of source.stats().replicas ?? []) older.inc({ control: r.url }, r.older);
    },
  });
  const conflicts: Counter = new Counter({
    name: `${prefix}snapshot_conflicts_total`,
    help: 'Snapshots refused for having the version held but other content (replicas that disagree); the node kept the one it had.',
    registers,
    collect() {
      conflicts.reset();
      conflicts.inc(source.stats().conflicts ?? 0);
    },
  });
  const gauge = (name: string, help: string, read: (s: ControlSourceStats) => number | undefined) => {
    const g: Gauge = new Gauge({
      name: prefix + name,
      help,
      registers,
      collect() {
        g.set(read(source.stats()) ?? 0);
      },
    });
  };
  gauge('snapshot_version', 'The version of the snapshot this node answers from (0 before it has one).', (s) => s.version);
  gauge('control_connected', '1 while the snapshot stream from control (any replica) is open, else 0.', (s) => (s.connected ? 1 : 0));
  gauge('control_unreachable_seconds', 'How long control has been out of reach (0 while connected).', (s) => (s.lostAt === undefined ? 0 : (now() - s.lostAt) / 1000));
  const replica: Gauge<'control'> = new Gauge({
    name: `${prefix}control_replica_connected`,
    help: '1 for the replica of control whose snapshot stream is open, 0 for the others.',
    labelNames: ['control'],
    registers,
    collect() {
      replica.reset();
      for (const r of source.stats().replicas ?? []) replica.set({ control: r.url }, r.connected ? 1 : 0);
    },
  });
}
