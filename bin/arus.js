#!/usr/bin/env node
// The `arus` command: the compiled JavaScript in dist/ (`npm run build`), or,
// where there is none or a source file changed since, the TypeScript sources
// through tsx's loader (slower to start: every module is transpiled).
import { distState } from './dist.mjs';

process.setSourceMapsEnabled(true);
const state = distState();
if (state === 'fresh') {
  await import('../dist/cli.js');
} else {
  if (state === 'stale') process.emitWarning('dist/ is older than src/: running the sources through tsx (npm run build makes it current)');
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
