import type { Logger } from '../log.js';
import { connectStream } from './stream-connection.js';

// A DNS node's link to control: it keeps the snapshot stream open,
// reconnecting with capped, jittered exponential back-off; it knows whether
// control is reached and since when it is not, and tells control how long
// the gap was when it gets through (control records it in its history).

export type ControlStreamOptions = {
  /** Control's API, e.g. http://10.0.0.5:8080 */
  url: string;
  /** How control is reached: `fetch` unless set (the TLS client of src/tls/client.ts in production). */
  fetchImpl?: (url: string, init?: RequestInit) => Promise<Response>;
  token: string;
  /** This node's name in control's history (default: the node its credential names, or the credential's name). */
  node?: string;
  /** Reconnect delays: exponential from `minMs` up to `maxMs`, each jittered to 50–100 %. Default 200 ms to 5 s. */
  backoff?: { minMs?: number; maxMs?: number };
  /** Control not heard from for this long before its first message: reconnect. Default 10 s. */
  connectTimeoutMs?: number;
  random?: () => number;
  now?: () => number;
  /** Schedules the wait before the next try and returns its cancel; a timer unless set (tests move time by hand). */
  setTimer?: (fn: () => void, ms: number) => () => void;
  log: Logger;
  /** The version the node holds (undefined: none yet), sent when it (re)connects. */
  version(): number | undefined;
  /** A document from control, as sent. */
  onSnapshot: (text: string) => void;
};

export interface ControlStream {
  readonly connected: boolean;
  /** Since when control has been out of reach (ms since the epoch); undefined while connected or before the first try. */
  readonly lostAt: number | undefined;
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
  const base = opts.url.replace(/\/+$/, '');

  let connected = false;
  let lostAt: number | undefined;
  let stopped = false;
  let connection: AbortController | undefined;
  let wakeSleep: (() => void) | undefined;

  function hello(): void {
    if (connected) return;
    connected = true;
    if (lostAt !== undefined) log.info({ gapMs: now() - lostAt }, 'control reached again');
    else log.info({ control: base }, 'connected to control');
    lostAt = undefined;
  }

  async function connectOnce(): Promise<void> {
    const ac = new AbortController();
    connection = ac;
    const query = new URLSearchParams(opts.node ? { node: opts.node } : {});
    const version = opts.version();
    if (version !== undefined) query.set('version', String(version));
    if (lostAt !== undefined) query.set('gapMs', String(Math.max(0, now() - lostAt)));
    try {
      const on = { hello, snapshot: opts.onSnapshot };
      await connectStream({ url: `${base}/v1/snapshots/stream?${query}`, token: opts.token, fetchImpl: opts.fetchImpl, silenceMs: opts.connectTimeoutMs ?? 10_000, ac, on });
    } finally {
      connection = undefined;
    }
  }

  async function run(): Promise<void> {
    let attempt = 0;
    while (!stopped) {
      try {
        await connectOnce();
      } catch (err) {
        if (stopped) break;
        const reason = failureOf(err);
        if (connected) {
          log.warn({ err: reason, version: opts.version() ?? null }, 'lost control: answering from the last snapshot');
          attempt = 0;
        } else if (attempt === 0 || attempt % 10 === 0) log.warn({ err: reason, attempt }, opts.version() !== undefined ? 'cannot reach control; answering from the last snapshot' : 'cannot reach control, and no snapshot to answer from yet');
        if (connected || lostAt === undefined) lostAt = now();
        connected = false;
      }
      if (stopped) break;
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
      return connected;
    },
    get lostAt() {
      return lostAt;
    },
    async stop() {
      stopped = true;
      connection?.abort(new Error('stopping'));
      wakeSleep?.();
      await running;
    },
  };
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
