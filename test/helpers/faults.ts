// Fault injection for black-box tests: a tiny tmpfs to fill, a process's memory.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** Mounts a tmpfs of `sizeMb` at `dir` (root only); the reason when it cannot. */
export function mountTmpfs(dir: string, sizeMb: number): { ok: true; unmount(): void } | { ok: false; reason: string } {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'not root: cannot mount a tmpfs to fill' };
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return { ok: false, reason: `mount -t tmpfs failed: ${r.stderr || r.error?.message}` };
  return { ok: true, unmount: () => void spawnSync('umount', ['-l', dir]) };
}

/** Fills the file system holding `dir` to the last byte; returns the filler's path (delete it to free the space). */
export function fill(dir: string): string {
  const file = join(dir, 'filler');
  spawnSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=64k'], { encoding: 'utf8' });
  // dd stops at the first short block: top up byte by byte-ish.
  spawnSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=512', 'oflag=append', 'conv=notrunc'], { encoding: 'utf8' });
  return file;
}

export function unfill(file: string): void {
  rmSync(file, { force: true });
}

/** Resident memory of a process (kB), from /proc. */
export function rssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** Runs `tasks` with at most `limit` at once. */
export async function pool<T>(count: number, limit: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await task(i);
      }
    }),
  );
  return out;
}
