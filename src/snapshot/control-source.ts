import type { Logger } from '../log.js';
import { startControlStream, type ReplicaState } from './control-stream.js';
import type { SnapshotFile } from './file.js';
import type { ServingState, StateSource } from './source.js';
import { createSnapshotSwap, type SnapshotSwap } from './swap.js';

export type ControlSourceOptions = {
  /** Control's API, e.g. http://10.0.0.5:8080: one replica (or give `urls`). */
  url?: string;
  /** Every replica's API: one stream at a time, from the first; the next on failure. */
  urls?: readonly string[];
  /** How control is reached: `fetch` unless set (the TLS client of src/tls/client.ts in production). */
  fetchImpl?: (url: string, init?: RequestInit) => Promise<Response>;
  /** A dns (or viewer, or admin) token. */
  token: string;
  /** This node's name in control's history (default: the node its credential names, or the credential's name). */
  node?: string;
  /** Where the last good snapshot is kept; none: a restart waits for control. */
  file?: SnapshotFile;
  log: Logger;
  /** Reconnect delays: exponential from `minMs` up to `maxMs`, each jittered to 50–100 %. Default 200 ms to 5 s. */
  backoff?: { minMs?: number; maxMs?: number };
  /** Control not heard from for this long before its first message (which names its keep-alive interval): reconnect. Default 10 s. */
  connectTimeoutMs?: number;
  /** While the replica streamed lags, how often the others are asked whether they are further. Default 5 s. */
  lagPatienceMs?: number;
  random?: () => number;
  now?: () => number;
};

export type ControlSourceStats = {
  /** The version answered from; undefined until a snapshot is held. */
  version?: number;
  /** Where the snapshot answered from came from. */
  from?: 'disk' | 'control';
  connected: boolean;
  /** Since when control has been out of reach (ms since the epoch); undefined while connected or before the first try. */
  lostAt?: number;
  applied: { disk: number; control: number };
  rejected: { disk: number; control: number };
  /** Valid snapshots refused for being older than the one held (a replica that lags). */
  older?: number;
  /** Valid snapshots refused for having the held version but other content. */
  conflicts?: number;
  /** The replica streamed from (or being tried) now. */
  url?: string;
  /** Every replica: whether its stream is open, how many older snapshots it sent, whether it lags. */
  replicas?: ReplicaState[];
};

export interface ControlStateSource extends StateSource {
  /** Resolves once there is a state to answer from: the file's at once, else control's first snapshot. */
  ready(): Promise<ServingState>;
  stats(): ControlSourceStats;
  /** Stops reconnecting, closes the stream, and waits for the file write under way. */
  stop(): Promise<void>;
}

/**
 * A DNS node's state, pushed by control over `GET /v1/snapshots/stream`
 * (server-sent events). Every snapshot is validated before it is swapped in
 * whole; a bad one is refused, counted and logged, and the node keeps
 * answering from the one it has; one older than the one held (a replica that
 * lags) is refused too, and another replica is looked for. With several
 * replicas it streams from one at a time and moves to the next when that one
 * fails. The last good snapshot is written to disk
 * and read back at start, so a node answers at once after a restart, control
 * up or not. When control is out of reach the node reconnects with capped,
 * jittered exponential back-off, and tells control how long the gap was when
 * it gets through (control records it in its history).
 */
export function createControlStateSource(opts: ControlSourceOptions): ControlStateSource {
  const { log, file } = opts;
  let saving: Promise<void> = Promise.resolve();
  const swap = createSnapshotSwap({
    log,
    onApplied(text, source) {
      if (source === 'control' && file)
        saving = file.save(text).catch((err: Error) => log.warn({ err: err.message, file: file.path }, 'cannot write the snapshot file; the last one written stays'));
    },
  });
  if (file) loadFile(file, swap, log);
  const stream = startControlStream({
    url: opts.url,
    urls: opts.urls,
    token: opts.token,
    fetchImpl: opts.fetchImpl,
    node: opts.node,
    backoff: opts.backoff,
    connectTimeoutMs: opts.connectTimeoutMs,
    lagPatienceMs: opts.lagPatienceMs,
    random: opts.random,
    now: opts.now,
    log,
    version: () => swap.version,
    onSnapshot: (text) => swap.offer(text, 'control'),
  });

  return {
    current: swap.current,
    ready: () => swap.ready(),
    stats() {
      const s = swap.stats();
      const { connected, lostAt, url } = stream;
      return { version: s.version, from: s.from, connected, lostAt, applied: s.applied, rejected: s.rejected, older: s.older, conflicts: s.conflicts, url, replicas: stream.replicas() };
    },
    async stop() {
      await stream.stop();
      await saving;
    },
  };
}

/** The last good snapshot, read back at start: a node answers from it until control is reached. */
function loadFile(file: SnapshotFile, swap: SnapshotSwap, log: Logger): void {
  let text: string | undefined;
  try {
    text = file.read();
  } catch (err) {
    swap.refused('disk');
    log.warn({ err: (err as Error).message, file: file.path }, 'cannot read the snapshot file');
    return;
  }
  if (text === undefined) log.info({ file: file.path }, 'no snapshot file yet: waiting for control');
  else if (swap.offer(text, 'disk') === 'applied') log.info({ file: file.path, version: swap.version }, 'answering from the snapshot file until control is reached');
}
