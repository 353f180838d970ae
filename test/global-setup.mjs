// Before any test: the black-box tests run the `arus` command as it ships
// (bin/arus.js → dist/), so dist/ is built first when a source file changed.
import { execFileSync } from 'node:child_process';
import { distState, ROOT } from '../bin/dist.mjs';

export default function setup() {
  if (distState() !== 'fresh') execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
}
