import type { Logger } from '../log.js';
import { createLagWatch, type Lag, type ReplicaState } from './replica-lag.js';
import { connectStream } from './stream-connection.js';
import type { OfferOutcome } from './swap.js';

export type { ReplicaState } from './replica-lag.js';

// A DNS node's link to control: it keeps one replica's snapshot stream open,
// and on a failure (refused, an error status, silence) moves to the next
// replica of its list with capped, jittered exponential back-off. A replica
// that sends a snapshot older than the one held (it lags) is kept, but every
// `lagPatienceMs` the others are asked for theirs, and the first that is not
// behind takes over. It knows whether control is reached and since when it
// is not, and tells control how long the gap was when it gets through
// (control records it in its history).

export type ControlStreamOptions = {
  /** Control's API, e.g. http://10.0.0.5:8080: one replica (or give `urls`). */
  url?: string;
  /** Every replica's API, tried in this order from the first. */
  urls?: readonly string[];
  /** How control is reached: `fetch` unless set (the TLS client of src/tls/client.ts in production). */
  fetchImpl?: (url: string, init?: RequestInit) => Promise<Response>;
  token: string;
  /** This node's name in control's history (default: the node its credential names, or the credential's name). */
  node?: string;
  /** Reconnect delays: exponential from `minMs` up to `maxMs`, each jittered to 50–100 %. Default 200 ms to 5 s. */
  backoff?: { minMs?: number; maxMs?: number };
  /** Control not heard from for this long before its first message: reconnect. Default 10 s. */
  connectTimeoutMs?: number;
  /** While the replica streamed lags, how often the others are asked whether they are further. Default 5 s. */
  lagPatienceMs?: number;
  random?: () => number;
  now?: () => number;
  /** Schedules the wait before the next try and returns its cancel; a timer unless set (tests move time by hand). */
  setTimer?: (fn: () => void, ms: number) => () => void;
  log: Logger;
  /** The version the node holds (undefined: none yet), sent when it (re)connects. */
  version(): number | undefined;
  /** A document from a replica, as sent; what became of it tells a lagging replica. */
  onSnapshot: (text: string, url: string) => OfferOutcome | void;
};

export interface ControlStream {
  readonly connected: boolean;
  /** The replica whose stream is open (or being opened) now. */
  readonly url: string;
  /** Since when control has been out of reach (ms since the epoch); undefined while connected or before the first try. */
  readonly lostAt: number | undefined;
  replicas(): ReplicaState[];
  /** Stops reconnecting, closes the stream, and resolves once the loop is over. */
  stop(): Promise<void>;
}

/** Starts at once: the first connection is under way when this returns. */
export function startControlStream(opts: ControlStreamOptions): ControlStream {
  const { log } = opts;
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const setTimer = opts.setTimer ?? startTimer;
  const minMs = opts.backoff?.minMs ?? 200;
  const maxMs = opts.backoff?.maxMs ?? 5000;
  const lagPatienceMs = opts.lagPatienceMs ?? 5000;
  const urls = opts.urls ?? (opts.url !== undefined ? [opts.url] : []);
  if (urls.length === 0) throw new Error('the control stream needs a URL');
  const replicas: ReplicaState[] = urls.map((u) => ({ url: u.replace(/\/+$/, ''), connected: false, older: 0, lagging: false }));
  const reach = createReach(log, now, replicas.length > 1, () => opts.version());
  const moveTo = (index: number, lag: Lag) => {
    switchTo = index;
    lag.ac.abort(new Error('moving to another replica'));
  };
  const { token, fetchImpl, onSnapshot } = opts;
  const lagWatch = createLagWatch({ replicas, log, lagPatienceMs, token, fetchImpl, onSnapshot, moveTo, version: () => opts.version() }, failureOf);

  let at = 0;
  let stopped = false;
  let connection: AbortController | undefined;
  let wakeSleep: (() => void) | undefined;
  /** Set when a lagging replica's stream is closed for a better one: the next to connect to, at once. */
  let switchTo: number | undefined;

  async function connectOnce(r: ReplicaState): Promise<void> {
    const ac = new AbortController();
    connection = ac;
    const query = new URLSearchParams(opts.node ? { node: opts.node } : {});
    const version = opts.version();
    if (version !== undefined) query.set('version', String(version));
    if (reach.lostAt !== undefined) query.set('gapMs', String(Math.max(0, now() - reach.lostAt)));
    const lag: Lag = { ac };
    try {
      const on = { hello: () => reach.hello(r), snapshot: (text: string) => lagWatch.snapshot(r, text, lag) };
      await connectStream({ url: `${r.url}/v1/snapshots/stream?${query}`, token: opts.token, fetchImpl: opts.fetchImpl, silenceMs: opts.connectTimeoutMs ?? 10_000, ac, on });
    } finally {
      clearTimeout(lag.timer);
      r.connected = false;
      connection = undefined;
    }
  }

  async function run(): Promise<void> {
    let attempt = 0;
    while (!stopped) {
      try {
        await connectOnce(replicas[at]);
      } catch (err) {
        if (stopped) break;
        if (switchTo !== undefined) {
          // A planned move to a replica that just answered: no back-off, and no gap.
          [at, switchTo, attempt] = [switchTo, undefined, 0];
          continue;
        }
        if (reach.connected) attempt = 0;
        reach.failed(replicas[at], failureOf(err), attempt);
      }
      if (stopped) break;
      at = (at + 1) % replicas.length;
      const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt++, 30));
      await new Promise<void>((resolve) => {
        const cancel = setTimer(resolve, ceiling * (0.5 + random() / 2));
        wakeSleep = () => {
          cancel();
          resolve();
        };
      });
      wakeSleep = undefined;
    }
  }

  const running = run();

  return {
    get connected() {
      return reach.connected;
    },
    get url() {
      return replicas[at].url;
    },
    get lostAt() {
      return reach.lostAt;
    },
    replicas: () => replicas.map((r) => ({ ...r })),
    async stop() {
      stopped = true;
      connection?.abort(new Error('stopping'));
      wakeSleep?.();
      await running;
    },
  };
}

/** Whether control is reached, and since when it is not: told once when lost, and when back. */
function createReach(log: Logger, now: () => number, many: boolean, version: () => number | undefined) {
  const reach = {
    connected: false,
    lostAt: undefined as number | undefined,
    hello(r: ReplicaState): void {
      r.connected = true;
      if (reach.connected) return;
      reach.connected = true;
      if (reach.lostAt !== undefined) log.info({ gapMs: now() - reach.lostAt, control: r.url }, 'control reached again');
      else log.info({ control: r.url }, 'connected to control');
      reach.lostAt = undefined;
    },
    failed(r: ReplicaState, reason: string, attempt: number): void {
      const which = many ? { control: r.url } : {};
      const held = version();
      if (reach.connected) log.warn({ err: reason, ...which, version: held ?? null }, many ? 'lost this replica of control: answering from the last snapshot, trying the next' : 'lost control: answering from the last snapshot');
      else if (attempt === 0 || attempt % 10 === 0) log.warn({ err: reason, ...which, attempt }, held !== undefined ? 'cannot reach control; answering from the last snapshot' : 'cannot reach control, and no snapshot to answer from yet');
      if (reach.connected || reach.lostAt === undefined) reach.lostAt = now();
      reach.connected = false;
    },
  };
  return reach;
}

function startTimer(fn: () => void, ms: number): () => void {
  const t = setTimeout(fn, ms);
  return () => clearTimeout(t);
}

/** The message of a fetch failure, an abort's reason, or a thrown Error. */
function failureOf(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  // A TLS client's errors already say which URL failed, and why.
  if (e?.name === 'ControlLinkError') return e.message;
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}
