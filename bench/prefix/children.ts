// The bench's child processes, seen from the parent: bench/prefix.ts run again
// with `--serve <kind> <arg>` (serve.ts), so that the load generator here does
// not share an event loop with the sims or the proxies.
import { serveChild, type Child } from '../balancer/children.js';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../prefix.ts', import.meta.url));

export type { Child } from '../balancer/children.js';

/** Runs the bench with `--serve <kind> <arg>`; resolves with the first JSON line it prints. */
export const child = (kind: string, arg: unknown): Promise<Child> => serveChild(entry, kind, arg);
