// The options several commands share — their defaults, read from the
// environment once, and their help lines — and the parsers of option values.
import type { ListenAddress } from '../dns/server.js';
import { UsageError } from './usage-error.js';

const env = process.env;

/** Defaults of the shared options, each overridable from the environment. */
export const DEFAULTS = {
  db: env.ARUS_DB ?? './data/arus.db',
  regions: env.ARUS_REGIONS ?? './regions',
  dnsListen: env.ARUS_DNS_LISTEN ?? '127.0.0.1:5300,[::1]:5300',
  apiListen: env.ARUS_API_LISTEN ?? '127.0.0.1:8080',
};

/** The shared options as parseArgs takes them: spread them into a command's options. */
export const opt = {
  db: { db: { type: 'string', default: DEFAULTS.db } },
  dns: { 'dns-listen': { type: 'string', default: DEFAULTS.dnsListen }, workers: { type: 'string' } },
  api: { 'api-listen': { type: 'string', default: DEFAULTS.apiListen } },
  regions: { regions: { type: 'string', default: DEFAULTS.regions } },
} as const;

/** The shared options' lines in a command's usage text. */
export const help = {
  db: `  --db FILE           SQLite database (default ${DEFAULTS.db}; ARUS_DB)`,
  regions: `  --regions DIR       YAML documents that seed an empty database (default ${DEFAULTS.regions}; ARUS_REGIONS)`,
  dns: `  --dns-listen LIST   DNS UDP+TCP listen addresses (default ${DEFAULTS.dnsListen}; ARUS_DNS_LISTEN)
  --workers N         DNS worker threads, answering on the same sockets (default: one per core; ARUS_DNS_WORKERS);
                      0 answers on the main thread, beside everything else the process does`,
  api: `  --api-listen ADDR   admin API listen address (default ${DEFAULTS.apiListen}; ARUS_API_LISTEN)`,
};

/** `--workers`: a whole number (0: DNS on the main thread), else ARUS_DNS_WORKERS, else one per core. */
export async function dnsWorkers(values: Record<string, unknown>): Promise<number> {
  const given = intOption((values.workers as string | undefined) ?? process.env.ARUS_DNS_WORKERS, 'workers');
  if (given !== undefined) return given;
  const { availableParallelism } = await import('node:os');
  return Math.max(1, availableParallelism());
}

/** A whole number of at least 0, or undefined when the option is absent. */
export function intOption(value: string | boolean | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a whole number`);
  return n;
}

/** `127.0.0.1:5300,[::1]:5300` → listen addresses. */
export function parseListen(list: string): ListenAddress[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item) => {
      const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(item);
      if (!m || Number(m[3]) > 65535) throw new UsageError(`bad listen address "${item}": use HOST:PORT or [V6]:PORT`);
      return { address: m[1] ?? m[2], port: Number(m[3]) };
    });
}
