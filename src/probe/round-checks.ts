import type { Check } from '../config/schema.js';
import type { ResultBuffer } from './buffer.js';
import { checkKey, runCheck, type CheckTls } from './check.js';
import type { ProbeResult, ProbeTargets } from './types.js';

// One round's checks: endpoints sharing a check are probed once, a check
// still running from an earlier round (a hanging server) is not started
// twice, and each outcome goes into the buffer as one result per endpoint
// (with several replicas of control, the buffer is every replica's: one
// round of checks feeds them all).

type Group = { key: string; check: Check; endpoints: string[] };

export interface RoundChecks {
  /** The targets to check from the next round on. */
  setTargets(next: ProbeTargets): void;
  /** Starts the round's checks; each promise settles once its results are buffered. */
  launch(): Promise<void>[];
  /** The checks still running, for stop to wait on. */
  inFlight(): Promise<void>[];
  /** Checks started, in total. */
  readonly count: number;
}

export type RoundChecksDeps = {
  buffer: Pick<ResultBuffer, 'push'>;
  /** Stamps each result's `at`. */
  clock: () => number;
  /** The agent's state: results arriving after a stop are dropped; the signal cancels the checks. */
  life: { readonly running: boolean; readonly signal: AbortSignal };
  /** How HTTPS checks verify what they check (a private CA beside the system's). */
  tls?: CheckTls;
};

export function createRoundChecks(deps: RoundChecksDeps): RoundChecks {
  const { buffer, clock, life } = deps;
  let groups: Group[] = [];
  const checking = new Map<string, Promise<void>>();
  let count = 0;

  return {
    setTargets(next) {
      const byKey = new Map<string, Group>();
      for (const t of next.targets) {
        const key = checkKey(t.check);
        const g = byKey.get(key) ?? { key, check: t.check, endpoints: [] };
        g.endpoints.push(t.endpoint);
        byKey.set(key, g);
      }
      groups = [...byKey.values()];
    },
    launch() {
      const launched: Promise<void>[] = [];
      for (const g of groups) {
        if (checking.has(g.key)) continue;
        count++;
        const p = runCheck(g.check, life.signal, deps.tls)
          .then((outcome) => {
            if (!life.running) return;
            const at = Math.round(clock());
            buffer.push(
              g.endpoints.map((endpoint): ProbeResult =>
                outcome.ok ? { endpoint, ok: true, rttMs: outcome.rttMs, at } : { endpoint, ok: false, error: outcome.error, at },
              ),
            );
          })
          .finally(() => checking.delete(g.key));
        checking.set(g.key, p);
        launched.push(p);
      }
      return launched;
    },
    inFlight: () => [...checking.values()],
    get count() {
      return count;
    },
  };
}
