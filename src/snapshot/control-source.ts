import { hostname } from 'node:os';
import { createLocator } from '../geo/locator.js';
import type { Logger } from '../log.js';
import { decodeSnapshot } from './document.js';
import type { SnapshotFile } from './file.js';
import type { ServingState, StateSource } from './source.js';
import { createSseReader } from './sse.js';

export type ControlSourceOptions = {
  /** Control's API, e.g. http://10.0.0.5:8080 */
  url: string;
  /** A dns (or viewer, or admin) token. */
  token: string;
  /** This node's name in control's history (default `dns-<host name>`). */
  node?: string;
  /** Where the last good snapshot is kept; none: a restart waits for control. */
  file?: SnapshotFile;
  log: Logger;
  /** Reconnect delays: exponential from `minMs` up to `maxMs`, each jittered to 50–100 %. Default 200 ms to 5 s. */
  backoff?: { minMs?: number; maxMs?: number };
  /** Control not heard from for this long before its first message (which names its keep-alive interval): reconnect. Default 10 s. */
  connectTimeoutMs?: number;
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
 * answering from the one it has. The last good snapshot is written to disk
 * and read back at start, so a node answers at once after a restart, control
 * up or not. When control is out of reach the node reconnects with capped,
 * jittered exponential back-off, and tells control how long the gap was when
 * it gets through (control records it in its history).
 */
export function createControlStateSource(opts: ControlSourceOptions): ControlStateSource {
  const { log, file } = opts;
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const minMs = opts.backoff?.minMs ?? 200;
  const maxMs = opts.backoff?.maxMs ?? 5000;
  const base = opts.url.replace(/\/+$/, '');

  let state: ServingState | undefined;
  let sha256: string | undefined;
  let from: 'disk' | 'control' | undefined;
  let connected = false;
  let lostAt: number | undefined;
  const applied = { disk: 0, control: 0 };
  const rejected = { disk: 0, control: 0 };
  let stopped = false;
  let connection: AbortController | undefined;
  let wakeSleep: (() => void) | undefined;
  let saving: Promise<void> = Promise.resolve();
  const waiting: ((s: ServingState) => void)[] = [];

  /** Validates and swaps in a document; false (and the old state kept) when it is refused or nothing new. */
  function offer(text: string, source: 'disk' | 'control'): boolean {
    let next: ServingState;
    let digest: string;
    try {
      const decoded = decodeSnapshot(text);
      digest = decoded.sha256;
      if (decoded.sha256 === sha256) return false;
      const { snapshot } = decoded;
      const old = state?.snapshot.zone;
      const sameGeo = old && JSON.stringify([old.geoip, old.nets]) === JSON.stringify([snapshot.zone.geoip, snapshot.zone.nets]);
      next = { snapshot, locator: sameGeo ? state!.locator : createLocator({ database: snapshot.zone.geoip.database, nets: snapshot.zone.nets }) };
    } catch (err) {
      rejected[source]++;
      log.warn({ from: source, err: (err as Error).message, keeping: state?.snapshot.version ?? null }, 'snapshot rejected');
      return false;
    }
    const previous = state?.snapshot.version;
    state = next;
    sha256 = digest;
    from = source;
    applied[source]++;
    const version = next.snapshot.version;
    if (previous !== undefined && version < previous) log.warn({ version, previous }, "control's snapshot version went back (was its database restored?); applied");
    else log.info({ version, previous: previous ?? null, from: source }, 'snapshot applied');
    for (const resolve of waiting.splice(0)) resolve(next);
    if (source === 'control' && file)
      saving = file.save(text).catch((err: Error) => log.warn({ err: err.message, file: file.path }, 'cannot write the snapshot file; the last one written stays'));
    return true;
  }

  function loadFile(): void {
    if (!file) return;
    let text: string | undefined;
    try {
      text = file.read();
    } catch (err) {
      rejected.disk++;
      log.warn({ err: (err as Error).message, file: file.path }, 'cannot read the snapshot file');
      return;
    }
    if (text === undefined) log.info({ file: file.path }, 'no snapshot file yet: waiting for control');
    else if (offer(text, 'disk')) log.info({ file: file.path, version: state!.snapshot.version }, 'answering from the snapshot file until control is reached');
  }

  /** One connection: resolves or throws when it ends; every event proves control alive. */
  async function connectOnce(): Promise<void> {
    const ac = new AbortController();
    connection = ac;
    let silence = opts.connectTimeoutMs ?? 10_000;
    let watchdog: NodeJS.Timeout | undefined;
    const heard = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => ac.abort(new Error(`nothing from control for ${silence} ms`)), silence);
      watchdog.unref();
    };
    const query = new URLSearchParams({ node: opts.node ?? `dns-${hostname()}` });
    if (state) query.set('version', String(state.snapshot.version));
    if (lostAt !== undefined) query.set('gapMs', String(Math.max(0, now() - lostAt)));
    heard();
    try {
      const res = await fetch(`${base}/v1/snapshots/stream?${query}`, { headers: { authorization: `Bearer ${opts.token}`, accept: 'text/event-stream' }, signal: ac.signal });
      if (res.status !== 200 || !res.body) {
        const body = await res.text().catch(() => '');
        throw new Error(`control answered ${res.status}: ${body.slice(0, 200)}`);
      }
      const read = createSseReader((e) => {
        if (e.event === 'hello') {
          const hello = JSON.parse(e.data) as { keepaliveMs?: number };
          if (typeof hello.keepaliveMs === 'number' && hello.keepaliveMs > 0) silence = 3 * hello.keepaliveMs;
          if (!connected) {
            connected = true;
            if (lostAt !== undefined) log.info({ gapMs: now() - lostAt }, 'control reached again');
            else log.info({ control: base }, 'connected to control');
            lostAt = undefined;
          }
        } else if (e.event === 'snapshot') offer(e.data, 'control');
      });
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        read(decoder.decode(chunk, { stream: true }));
        heard();
      }
      throw new Error('control closed the stream');
    } finally {
      clearTimeout(watchdog);
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
          log.warn({ err: reason, version: state?.snapshot.version ?? null }, 'lost control: answering from the last snapshot');
          attempt = 0;
        } else if (attempt === 0 || attempt % 10 === 0) log.warn({ err: reason, attempt }, state ? 'cannot reach control; answering from the last snapshot' : 'cannot reach control, and no snapshot to answer from yet');
        if (connected || lostAt === undefined) lostAt = now();
        connected = false;
      }
      if (stopped) break;
      const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt++, 30));
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ceiling * (0.5 + random() / 2));
        wakeSleep = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wakeSleep = undefined;
    }
  }

  loadFile();
  const running = run();

  return {
    current() {
      if (!state) throw new Error('no snapshot yet: neither the snapshot file nor control has given one');
      return state;
    },
    ready: () => (state ? Promise.resolve(state) : new Promise((resolve) => waiting.push(resolve))),
    stats: () => ({ version: state?.snapshot.version, from, connected, lostAt, applied: { ...applied }, rejected: { ...rejected } }),
    async stop() {
      stopped = true;
      connection?.abort(new Error('stopping'));
      wakeSleep?.();
      await running;
      await saving;
    },
  };
}

/** The message of a fetch failure, an abort's reason, or a thrown Error. */
function failureOf(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}
