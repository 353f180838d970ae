// Certificate files change under a running process: cert-manager swaps a
// Secret's symlinks, certbot rewrites its live/ links. A cheap poll of the
// files' identity (stat follows the links) says when to load them again.
import { stat } from 'node:fs/promises';

export type FileWatch = { stop(): void };

/**
 * Calls `changed` after any of `files` changes (inode, size or mtime), polling
 * every `intervalMs`. When `changed` returns false (the files do not load yet:
 * a certificate written before its key) it is called again at the next poll.
 */
export function watchFiles(files: readonly string[], intervalMs: number, changed: () => boolean): FileWatch {
  let last: string | undefined;
  let busy = false;
  const signature = async () => {
    const parts = await Promise.all(files.map((f) => stat(f).then((s) => `${s.ino}:${s.size}:${s.mtimeMs}`, () => 'missing')));
    return parts.join('|');
  };
  void signature().then((s) => (last ??= s));
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void signature()
      .then((s) => {
        if (last === undefined || s === last) last ??= s;
        else if (changed()) last = s;
      })
      .finally(() => (busy = false));
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
