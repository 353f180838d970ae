// The DNS worker's entry in a development checkout (no dist/, or a stale one:
// bin/arus.js runs the sources through tsx). `--import tsx` in a Worker's
// execArgv does not reach the worker's own entry on Node 20 ("Unknown file
// extension .ts"), so the worker registers tsx's loader itself, then loads
// the TypeScript entry. Built code starts dist/dns/workers/worker.js directly.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
