// Whether etcd answers with quorum, as this replica sees it: a linearizable
// read every half second (it needs a majority of members). A stretch without
// quorum is a state with a start and an end, reported when it ends so that
// the leader that follows can put it in the history.
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../../log.js';
import { KEYS } from './keys.js';

export type Gap = { start: number; end: number };

export interface QuorumMonitor {
  /** True while the last read answered. */
  reachable(): boolean;
  /** Since when etcd has not answered (ms), while it does not. */
  unreachableSince(): number | undefined;
  /** Called when a stretch without quorum of at least `minGapMs` ends. */
  onGap(fn: (gap: Gap) => void): void;
  stop(): void;
}

export function createQuorumMonitor(deps: { client: Etcd3; log: Logger; everyMs?: number; minGapMs?: number; now?: () => number }): QuorumMonitor {
  const { client, log } = deps;
  const now = deps.now ?? Date.now;
  const minGap = deps.minGapMs ?? 1000;
  let since: number | undefined;
  let busy = false;
  const listeners: ((g: Gap) => void)[] = [];

  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    const t = now();
    void client
      .get(KEYS.leader)
      .exec()
      .then(
        () => {
          if (since !== undefined) {
            const gap = { start: since, end: now() };
            since = undefined;
            log.info({ seconds: (gap.end - gap.start) / 1000 }, 'etcd answers with quorum again');
            if (gap.end - gap.start >= minGap) for (const fn of listeners) fn(gap);
          }
        },
        (err: Error) => {
          if (since === undefined) {
            since = t;
            log.warn({ err: err.message }, 'etcd does not answer with quorum: writes are refused and nobody leads until it does');
          }
        },
      )
      .finally(() => (busy = false));
  }, deps.everyMs ?? 500);
  timer.unref();

  return {
    reachable: () => since === undefined,
    unreachableSince: () => since,
    onGap: (fn) => void listeners.push(fn),
    stop: () => clearInterval(timer),
  };
}
