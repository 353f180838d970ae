import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../dns/fixtures.js';
import { encodeSnapshot } from './document.js';
import { buildSnapshot } from './snapshot.js';
import { createSnapshotSwap } from './swap.js';

const doc = (version: number, name = 'Jakarta') => {
  const config = defaultConfig();
  config.regions.find((r) => r.id === 'jkt')!.name = name;
  return encodeSnapshot(buildSnapshot(config, version));
};

function swapWithLog() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const applied: string[] = [];
  const swap = createSnapshotSwap({ log, onApplied: (text) => void applied.push(text) });
  return { swap, lines, applied, warnings: () => lines.filter((l) => l.level === 40) };
}

describe('snapshot swap: versions only go forward', () => {
  it('takes the first valid document, then only newer ones', () => {
    const { swap, applied } = swapWithLog();
    expect(swap.offer(doc(5), 'control')).toBe('applied');
    expect(swap.offer(doc(7, 'Jakarta Raya'), 'control')).toBe('applied');
    expect(swap.version).toBe(7);
    expect(swap.current().snapshot.regionById.get('jkt')!.name).toBe('Jakarta Raya');
    expect(applied).toHaveLength(2);
  });

  it('refuses a document older than the one held (a replica that lags), counts it, and keeps what it has', () => {
    const { swap, applied, warnings } = swapWithLog();
    swap.offer(doc(9, 'Jakarta Raya'), 'disk');
    const held = swap.current();
    expect(swap.offer(doc(8), 'control')).toBe('older');
    expect(swap.offer(doc(3), 'control')).toBe('older');
    expect(swap.current()).toBe(held);
    expect(swap.stats()).toMatchObject({ version: 9, from: 'disk', older: 2, conflicts: 0, applied: { disk: 1, control: 0 }, rejected: { disk: 0, control: 0 } });
    expect(applied).toHaveLength(1);
    // Whoever offered it says which replica lags (once); the swap does not warn per document.
    expect(warnings()).toEqual([]);
  });

  it('takes the same document again as nothing new', () => {
    const { swap, applied } = swapWithLog();
    swap.offer(doc(4), 'disk');
    expect(swap.offer(doc(4), 'control')).toBe('same');
    expect(swap.stats()).toMatchObject({ from: 'disk', older: 0, conflicts: 0, applied: { control: 0 } });
    expect(applied).toHaveLength(1);
  });

  it('refuses the held version with other content, with a warning: replicas that disagree', () => {
    const { swap, warnings } = swapWithLog();
    swap.offer(doc(6), 'control');
    expect(swap.offer(doc(6, 'Djakarta'), 'control')).toBe('conflict');
    expect(swap.current().snapshot.regionById.get('jkt')!.name).toBe('Jakarta');
    expect(swap.stats()).toMatchObject({ conflicts: 1, older: 0 });
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ version: 6, msg: expect.stringMatching(/same version and different content/) });
  });

  it('rejects an invalid document whatever its version, and an older invalid one is rejected, not older', () => {
    const { swap } = swapWithLog();
    swap.offer(doc(6), 'control');
    expect(swap.offer(doc(9).replace('"Singapore"', '"Singapura"'), 'control')).toBe('rejected');
    expect(swap.offer(doc(2).replace('"Singapore"', '"Singapura"'), 'control')).toBe('rejected');
    expect(swap.stats()).toMatchObject({ version: 6, older: 0, rejected: { control: 2 } });
  });
});
