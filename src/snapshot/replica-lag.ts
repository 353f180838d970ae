import type { Logger } from '../log.js';
import type { OfferOutcome } from './swap.js';

// What a DNS node does about a replica of control that lags: its snapshots
// older than the one held are refused (the swap's rule), the replica is told
// about once, and while it lags the other replicas are asked for their
// current snapshot every `lagPatienceMs`; the first that is not behind takes
// over the stream (control-stream.ts moves to it at once, with no gap).

/** One replica as the node sees it. */
export type ReplicaState = {
  url: string;
  /** Its stream is the one open now. */
  connected: boolean;
  /** Documents it sent that were older than the one held. */
  older: number;
  /** Its last snapshot was older than the one held. */
  lagging: boolean;
};

/** The lag watch of one connection: the timer that asks the other replicas, and the connection it may close. */
export type Lag = { ac: AbortController; timer?: NodeJS.Timeout };

export type LagDeps = {
  replicas: readonly ReplicaState[];
  log: Logger;
  lagPatienceMs: number;
  token: string;
  fetchImpl?: (url: string, init?: RequestInit) => Promise<Response>;
  version(): number | undefined;
  onSnapshot(text: string, url: string): OfferOutcome | void;
  /** A replica not behind was found: close the lagging stream and connect to it. */
  moveTo(index: number, lag: Lag): void;
};

/** Handles a stream's snapshots, watching for lag; `failureOf` words a failed request for the debug log. */
export function createLagWatch(deps: LagDeps, failureOf: (err: unknown) => string) {
  const { replicas, log, lagPatienceMs } = deps;

  async function fetchCurrent(base: string, stream: AbortSignal): Promise<string> {
    // Ends with the stream it would replace (a stop, a failure) or after its own deadline.
    const signal = AbortSignal.any([stream, AbortSignal.timeout(Math.min(5000, Math.max(1000, lagPatienceMs)))]);
    const headers = { ...(deps.token ? { authorization: `Bearer ${deps.token}` } : {}), accept: 'application/json' };
    const res = await (deps.fetchImpl ?? fetch)(`${base}/v1/snapshots/current`, { headers, signal });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`status ${res.status}`);
    return text;
  }

  /** The others, in turn from the one after `r`: the first at least as new as the one held takes over. None: ask again later. */
  async function lookElsewhere(r: ReplicaState, lag: Lag): Promise<void> {
    const from = replicas.indexOf(r);
    for (let k = 1; k < replicas.length && r.lagging && !lag.ac.signal.aborted; k++) {
      const other = replicas[(from + k) % replicas.length];
      const outcome = await fetchCurrent(other.url, lag.ac.signal).then(
        (text) => deps.onSnapshot(text, other.url),
        (err: unknown) => void log.debug({ control: other.url, err: failureOf(err) }, 'cannot ask this replica for its snapshot'),
      );
      if ((outcome !== 'applied' && outcome !== 'same') || lag.ac.signal.aborted) continue;
      log.info({ from: r.url, to: other.url, version: deps.version() ?? null }, 'moving to a replica that is not behind');
      return deps.moveTo(replicas.indexOf(other), lag);
    }
    if (r.lagging && !lag.ac.signal.aborted) lag.timer = setTimeout(() => void lookElsewhere(r, lag), lagPatienceMs).unref();
  }

  return {
    /** A document from the replica streamed: one that lags is told once, and the others are asked for better. */
    snapshot(r: ReplicaState, text: string, lag: Lag): void {
      const outcome = deps.onSnapshot(text, r.url);
      if (outcome === 'applied' || outcome === 'same') {
        if (r.lagging) log.info({ control: r.url, version: deps.version() ?? null }, 'replica caught up');
        r.lagging = false;
        clearTimeout(lag.timer);
        lag.timer = undefined;
      }
      if (outcome !== 'older') return;
      r.older++;
      if (!r.lagging) log.warn({ control: r.url, held: deps.version() ?? null }, 'replica lags: its snapshot is older than the one held; keeping ours');
      r.lagging = true;
      if (replicas.length > 1) lag.timer ??= setTimeout(() => void lookElsewhere(r, lag), lagPatienceMs).unref();
    },
  };
}
