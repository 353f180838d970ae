import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { ControlSourceStats } from './control-source.js';
import { observeControlSource } from './metrics.js';

describe('snapshot source metrics', () => {
  it("read the source's counters and state at scrape time", async () => {
    const registry = new Registry();
    let stats: ControlSourceStats = { connected: false, applied: { disk: 0, control: 0 }, rejected: { disk: 1, control: 0 } };
    observeControlSource(registry, { stats: () => stats }, { now: () => 10_000 });
    let text = await registry.metrics();
    expect(text).toContain('arus_snapshot_rejected_total{source="disk"} 1');
    expect(text).toContain('arus_snapshot_version 0');
    expect(text).toContain('arus_control_connected 0');
    expect(text).toContain('arus_control_unreachable_seconds 0');

    stats = { version: 42, from: 'disk', connected: false, lostAt: 7_500, applied: { disk: 1, control: 3 }, rejected: { disk: 1, control: 2 } };
    text = await registry.metrics();
    expect(text).toContain('arus_snapshot_version 42');
    expect(text).toContain('arus_snapshot_applied_total{source="control"} 3');
    expect(text).toContain('arus_snapshot_rejected_total{source="control"} 2');
    expect(text).toContain('arus_control_unreachable_seconds 2.5');
  });

  it('count the older snapshots each replica sent, and name the replica streamed from', async () => {
    const registry = new Registry();
    const replicas = [
      { url: 'https://c1:8443', connected: false, older: 3, lagging: true },
      { url: 'https://c2:8443', connected: true, older: 0, lagging: false },
    ];
    observeControlSource(registry, { stats: () => ({ connected: true, applied: { disk: 0, control: 2 }, rejected: { disk: 0, control: 0 }, older: 3, conflicts: 1, replicas }) });
    const text = await registry.metrics();
    expect(text).toContain('arus_snapshot_older_total{control="https://c1:8443"} 3');
    expect(text).toContain('arus_snapshot_older_total{control="https://c2:8443"} 0');
    expect(text).toContain('arus_snapshot_conflicts_total 1');
    expect(text).toContain('arus_control_replica_connected{control="https://c1:8443"} 0');
    expect(text).toContain('arus_control_replica_connected{control="https://c2:8443"} 1');
  });
});
