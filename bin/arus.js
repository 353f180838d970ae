#!/usr/bin/env node
// The `arus` command: the compiled JavaScript in dist/ (built by `npm ci`'s
// prepare, or `npm run build`), or, in a development checkout where a source
// file changed since, the TypeScript sources through tsx's loader (slower to
// start: every module is transpiled).
import { distState } from './dist.mjs';

process.setSourceMapsEnabled(true);
const state = distState();
if (state === 'fresh') {
  await import('../dist/cli.js');
} else {
  // A development checkout only: tsx is a dev dependency, and production runs what `npm ci` built (prepare).
  const tsx = await import('tsx/esm/api').catch(() => undefined);
  if (!tsx) {
    process.stderr.write(`arus: dist/ is ${state === 'stale' ? 'older than src/' : 'missing'}: run \`npm run build\` (npm ci runs it)\n`);
    process.exit(1);
  }
  if (state === 'stale') process.emitWarning('dist/ is older than src/: running the sources through tsx (npm run build makes it current)');
  tsx.register();
  await import('../src/cli.ts');
}
