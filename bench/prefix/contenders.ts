// The contenders, each started alike in front of the same fresh sims and
// stopped after its run: Arus's `prefix`, `gpu` and `round-robin` (balancer
// child processes), HAProxy `leastconn` and bounded-load consistent hashing
// on the session header, the SGLang cache_aware re-implementation (a child
// process), and the oracle (the client sends each group straight to the sim
// its hash names). A contender whose prerequisite this tree lacks says why.
import { spawnSync } from 'node:child_process';
import { Pool } from 'undici';
import { STRATEGIES } from '../../src/balancer/pickers/create-picker.js';
import { strategies } from '../../src/config/schema.js';
import { waitHealthy } from '../balancer/setups.js';
import { sleep } from '../common.js';
import { child } from './children.js';
import { HAPROXY, startHaproxy, type HaproxyBalance } from './haproxy.js';
import type { Route } from './run.js';
import { ARUS_MAX_CONCURRENT, SETUPS } from './settings.js';

export type Started = { route: Route; stop(): Promise<void> };
export type Contender = {
  label: string;
  /** Arus's own: a lost request fails the bench. */
  arus: boolean;
  /** Why it cannot run in this tree; undefined when it can. */
  missing?: string;
  start(dir: string, simPorts: number[]): Promise<Started>;
};

export const PREFIX = 'arus prefix';
export const GPU = 'arus gpu';
export const ROUND_ROBIN = 'arus round-robin';
export const LEASTCONN = 'haproxy leastconn';
export const HASH = 'haproxy hash-bounded';
export const SGLANG = 'sglang-cache_aware (re-implementation)';
export const ORACLE = 'oracle (pinned by hash)';

const pool = (port: number) => new Pool(`http://127.0.0.1:${port}`, { connections: 4096, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 });

/** A proxy on `port`: every request goes there. */
function through(port: number, stopProxy: () => Promise<void>): Started {
  const p = pool(port);
  return { route: () => ({ pool: p }), stop: async () => (await p.destroy(), await stopProxy()) };
}

/** FNV-1a, 32 bits: the oracle's group → instance. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function arus(strategy: string): Contender {
  const known = (STRATEGIES as readonly string[]).includes(strategy) && (strategies as readonly string[]).includes(strategy);
  return {
    label: `arus ${strategy}`,
    arus: true,
    missing: known ? undefined : `strategy '${strategy}' is not in STRATEGIES (src/balancer/pickers/create-picker.ts)`,
    async start(_dir, ports) {
      const c = await child('arus', { strategy, ports, maxConcurrent: ARUS_MAX_CONCURRENT });
      const port = c.info.port as number;
      await waitHealthy(port);
      // Let a second readiness round scrape fresh /metrics gauges before traffic.
      await sleep(1200);
      return through(port, c.stop);
    },
  };
}

function haproxy(balance: HaproxyBalance, label: string, missing: string | undefined): Contender {
  return {
    label,
    arus: false,
    missing,
    async start(dir, ports) {
      const h = await startHaproxy(dir, balance, ports);
      return through(h.port, h.stop);
    },
  };
}

/** Every contender, filtered by BENCH_SETUPS. */
export function contenders(): Contender[] {
  const noHaproxy = spawnSync(HAPROXY, ['-v']).error ? `${HAPROXY} not found (Debian: apt-get install haproxy)` : undefined;
  const all: Contender[] = [
    arus('prefix'),
    arus('gpu'),
    arus('round-robin'),
    haproxy('leastconn', LEASTCONN, noHaproxy),
    haproxy('hash', HASH, noHaproxy),
    {
      label: SGLANG,
      arus: false,
      async start(_dir, ports) {
        const c = await child('sglang', { ports });
        return through(c.info.port as number, c.stop);
      },
    },
    {
      label: ORACLE,
      arus: false,
      start(_dir, ports) {
        const pools = ports.map(pool);
        const route = (group: string) => {
          const i = fnv1a(group) % pools.length;
          return { pool: pools[i], instance: `i${i}` };
        };
        return Promise.resolve({ route, stop: async () => void (await Promise.all(pools.map((p) => p.destroy()))) });
      },
    },
  ];
  return all.filter((c) => !SETUPS || SETUPS.some((s) => c.label.includes(s)));
}
