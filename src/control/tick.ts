// The periodic tick: agents going silent, capacity reports going stale,
// configuration and overrides written by others, the latency map, pruning of
// raw results, and retrying writes the store refused. A storage fault never
// escapes it: control keeps serving from memory and tries again next tick.
import { storageFault } from '../db/faults.js';
import type { HealthTracker } from '../health/tracker.js';
import type { LatencyMap } from '../health/latency.js';
import type { HealthEvent } from '../health/types.js';
import type { Logger } from '../log.js';
import type { LatencyMatrix } from '../snapshot/snapshot.js';
import type { CapacityLoop } from './capacity-loop.js';
import type { ProbeResults } from './probe-results.js';
import type { Publisher } from './publish.js';
import type { ServedConfig } from './served-config.js';
import type { StorageLog } from './storage-log.js';
import type { ZoneKeys } from './zone-keys.js';

export interface Ticker {
  tick(): void;
  start(): void;
  stop(): void;
}

export function createTicker(deps: {
  tracker: HealthTracker;
  latency: LatencyMap;
  /** The monotonic clock (ms). */
  mono: () => number;
  log: Logger;
  tickMs: number;
  /** Latency changes reach the snapshot at most this often (ms). */
  latencyEveryMs: number;
  trackerEvents: (events: readonly HealthEvent[]) => void;
  served: ServedConfig;
  publisher: Publisher;
  capacity: Pick<CapacityLoop, 'tick'>;
  results: Pick<ProbeResults, 'prune'>;
  storageLog: Pick<StorageLog, 'check'>;
  /** A new configuration was applied. */
  configApplied?: () => void;
  /** A signed zone's keys: rollover steps, and key RRset signatures made anew. */
  zoneKeys?: Pick<ZoneKeys, 'tick'>;
}): Ticker {
  const { tracker, latency, mono, served, publisher } = deps;
  let latencyAt = 0;
  let timer: NodeJS.Timeout | undefined;

  function tick(): void {
    try {
      step();
    } catch (err) {
      // Reading the database failed too (I/O error, corrupt file): serve what is in memory, retry next tick.
      if (!storageFault(err)) throw err;
    }
    deps.storageLog.check();
  }

  function step(): void {
    const t = mono();
    deps.trackerEvents(tracker.tick(t));
    publisher.publishIfTrackerMoved('probe agents silent');
    deps.capacity.tick(t);
    if (served.reload()) {
      tracker.setEndpoints(served.endpoints(), t);
      deps.configApplied?.();
      publisher.publishTrackerReset('configuration applied');
    } else publisher.publishIfOverridden('admin override');
    if (t - latencyAt >= deps.latencyEveryMs) {
      const m = latency.matrix();
      if (JSON.stringify(m) !== JSON.stringify(publisher.latency()) && materiallyDifferent(publisher.latency(), m)) {
        latencyAt = t;
        publisher.publishLatency(m, 'latency map updated');
      }
    }
    if (deps.zoneKeys?.tick()) publisher.publish('dnssec keys');
    deps.results.prune(t);
    publisher.persist();
  }

  return {
    tick,
    start() {
      let failures = 0;
      timer ??= setInterval(() => {
        try {
          tick();
          failures = 0;
        } catch (err) {
          // Four times a second: say it once, then every minute or so.
          if (failures++ % 240 === 0) deps.log.error({ err, failures }, 'control tick failed');
        }
      }, deps.tickMs);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}

/** A latency shift worth re-steering for: a pair appears or moves by more than 20 %. */
function materiallyDifferent(a: LatencyMatrix, b: LatencyMatrix): boolean {
  for (const [p, row] of Object.entries(b))
    for (const [r, v] of Object.entries(row)) {
      const old = a[p]?.[r];
      if (old === undefined || Math.abs(v - old) > 0.2 * Math.max(old, 1)) return true;
    }
  return false;
}
