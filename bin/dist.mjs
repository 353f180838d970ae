// Whether dist/ (npm run build) is there and newer than every source file:
// bin/arus.js runs it then, else the sources through tsx; the tests build it first.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const STAMP = join(ROOT, 'dist', '.built');

/** The newest modification time under `dir` (ms), 0 when it does not exist. */
function newest(dir) {
  if (!existsSync(dir)) return 0;
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const m = statSync(join(e.parentPath ?? e.path, e.name)).mtimeMs;
    if (m > t) t = m;
  }
  return t;
}

/** 'fresh', 'missing' or 'stale' (a source file changed after the build). */
export function distState() {
  if (!existsSync(STAMP)) return 'missing';
  return newest(join(ROOT, 'src')) > statSync(STAMP).mtimeMs ? 'stale' : 'fresh';
}
