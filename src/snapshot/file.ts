import { readFileSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface SnapshotFile {
  readonly path: string;
  /** The stored text; undefined when there is no file yet. */
  read(): string | undefined;
  /**
   * Replaces the file whole or not at all (making its folder if need be): a temporary file beside it,
   * fsync, rename over it, fsync of the folder. Saves made while one is
   * being written coalesce: only the latest text is written next.
   */
  save(text: string): Promise<void>;
}

/** The last good snapshot of a DNS node, as the document text control sent. */
export function createSnapshotFile(path: string): SnapshotFile {
  let queued: string | undefined;
  let running: Promise<void> | undefined;

  const write = async (text: string) => {
    const tmp = `${path}.${process.pid}.tmp`;
    await mkdir(dirname(path), { recursive: true });
    // Owner only: a signing node's snapshot holds the zone's ZSK.
    const file = await open(tmp, 'w', 0o600);
    try {
      await file.writeFile(text, 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    try {
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    // The rename is durable only once the folder's entry is.
    const dir = await open(dirname(path), 'r').catch(() => undefined);
    if (dir) await dir.sync().catch(() => undefined).finally(() => dir.close());
  };

  return {
    path,
    read() {
      try {
        return readFileSync(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    save(text) {
      queued = text;
      running ??= (async () => {
        try {
          while (queued !== undefined) {
            const next = queued;
            queued = undefined;
            await write(next);
          }
        } finally {
          running = undefined;
        }
      })();
      return running;
    },
  };
}
