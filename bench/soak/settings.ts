// The soak's knobs (from the environment, see bench/soak.ts), its paths, the
// admin token it runs `arus up` with, and its (unseeded) chance.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
export const SECONDS = env('SOAK_SECONDS', 600);
export const QPS = env('SOAK_QPS', 5000);
export const BUDGET_MS = env('SOAK_BUDGET_MS', 3000);
export const MAX_DOWN = env('SOAK_MAX_DOWN', 3);
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'arus.js');
export const ADMIN = 'soak-admin-token';

export const random = Math.random;
export const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)];
export const between = (lo: number, hi: number) => lo + random() * (hi - lo);
