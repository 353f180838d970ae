// The references bench's knobs (from the environment, see bench/references.ts)
// and the paths and names every part of it shares.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
export const SECONDS = env('BENCH_SECONDS', 20);
export const RUNS = env('BENCH_RUNS', 3);
export const FAILOVER_RUNS = env('BENCH_FAILOVER_RUNS', 3);
export const SERVER_CPU = env('BENCH_SERVER_CPU', 1);
export const CLIENT_CPU = env('BENCH_CLIENT_CPU', 0);
export const OUTSTANDING = env('BENCH_OUTSTANDING', 100);
export const ONLY = process.env.BENCH_ONLY?.split(',');
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The `arus` that runs: this tree's, or BENCH_ARUS_ROOT's (another checkout). */
export const BIN = join(process.env.BENCH_ARUS_ROOT ?? ROOT, 'bin', 'arus.js');
export const TEMPLATES = join(ROOT, 'bench', 'references');
export const ZONE = 'gslb.example.com';
export const TTL = 30;
