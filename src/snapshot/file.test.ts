import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSnapshotFile } from './file.js';

describe('snapshot file', () => {
  it('reads nothing before the first save, then what was saved', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'arus-file-'));
    const file = createSnapshotFile(join(dir, 'snapshot.json'));
    expect(file.read()).toBeUndefined();
    await file.save('{"v":1}');
    expect(file.read()).toBe('{"v":1}');
    await file.save('{"v":2}');
    expect(file.read()).toBe('{"v":2}');
    expect(readdirSync(dir)).toEqual(['snapshot.json']);
  });

  it('coalesces saves made while one is written: the latest wins, no temporary file is left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'arus-file-'));
    const file = createSnapshotFile(join(dir, 'snapshot.json'));
    await Promise.all(Array.from({ length: 20 }, (_, i) => file.save(`{"v":${i}}`)));
    expect(file.read()).toBe('{"v":19}');
    expect(readdirSync(dir)).toEqual(['snapshot.json']);
  });

  it('makes its folder, and fails a save where no folder can be, leaving nothing behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'arus-file-'));
    const file = createSnapshotFile(join(dir, 'data', 'snapshot.json'));
    await file.save('{}');
    expect(file.read()).toBe('{}');
    const blocked = createSnapshotFile(join(dir, 'data', 'snapshot.json', 'snapshot.json'));
    await expect(blocked.save('{}')).rejects.toThrow(/EEXIST|ENOTDIR/);
    expect(readdirSync(join(dir, 'data'))).toEqual(['snapshot.json']);
  });
});
