// DNS on worker threads of its own (`--workers N`): worker 0 binds every
// listen address, the others answer on the same sockets (shared by file
// descriptor: Node 20 has no SO_REUSEPORT), each with its own responder and
// its own copy of the snapshot. The main thread keeps the state source
// (control, a control stream, a database) and hands each new snapshot to every
// worker once, as it changes; it never answers a query.
import { Worker } from 'node:worker_threads';
import { geoIpFiles } from '../../geo/geoip.js';
import type { Logger } from '../../log.js';
import type { ServingState } from '../../snapshot/source.js';
import type { ResponderStats } from '../responder-stats.js';
import type { DnsServerStats, ListenAddress, SocketDescriptors } from '../server.js';
import { awaitClosed, createStopBarrier, PARTIES } from './barrier.js';
import { sumStats, type Summed } from './sum.js';
import type { AddressInfoLike, FromWorker, ToWorker, WorkerHeap, WorkerSetup } from './protocol.js';

export type DnsWorkersOptions = {
  /** Worker threads (at least 1). */
  workers: number;
  listen: readonly ListenAddress[];
  /** The main thread's current state, checked every `pollMs` for a new snapshot (or given to `start`). */
  getState?: () => ServingState;
  log: Logger;
  /** createDnsServer's knobs; the total TCP connection cap is the node's (the workers count together), the cap per client each worker's. */
  server?: Readonly<Record<string, number>>;
  /** createResponder's knobs (plain data); each worker's RRL allows its share of the rates. */
  responder?: Readonly<Record<string, unknown>>;
  /** How often the state is checked for a new snapshot. Default 5 ms. */
  pollMs?: number;
  /**
   * At most one snapshot handed over per this long (default 200 ms): under a burst of changes
   * (every API write makes one or two) the workers take the newest, not each in between, and so
   * rebuild their caches (steer() for every client network asked again) at most 5 times a second.
   * The first change after a quiet spell (a failover, as a rule) goes at once.
   */
  coalesceMs?: number;
  /** A worker died: by default the process exits (its sockets are shared: a supervisor restarts the node whole). */
  onWorkerDeath?: (index: number, why: string) => void;
};

export interface DnsWorkers {
  /**
   * Spawns worker 0 now, before there is a snapshot to answer from: its modules load while the
   * main thread gets the first snapshot (a node restarted from its snapshot file answers sooner).
   */
  warm(): void;
  start(getState?: () => ServingState): Promise<{ udp: AddressInfoLike[]; tcp: AddressInfoLike[] }>;
  stop(): Promise<void>;
  /** Every worker's counters, summed (each worker asked now), and each worker's queries and snapshot version. */
  stats(): Promise<PoolStats>;
  /** The snapshot version each worker answers from, as each last said. */
  versions(): number[];
  /** The workers' kernel thread ids (Linux), once they listen. */
  threadIds(): number[];
  readonly size: number;
}

/** `--workers`' default: one per core. */
export type PoolStats = Summed & { workers: { index: number; queries: number; version: number; heap: WorkerHeap }[] };

type Part = { index: number; responder: ResponderStats; server: DnsServerStats; heap: WorkerHeap };

// The compiled worker next to this file; under tsx (a checkout whose dist/ is stale or missing) the source, through a
// bootstrap that registers tsx's loader in the worker (boot-tsx.mjs says why).
const workerUrl = import.meta.url.endsWith('.ts') ? new URL('./boot-tsx.mjs', import.meta.url) : new URL('./worker.js', import.meta.url);

export function createDnsWorkers(opts: DnsWorkersOptions): DnsWorkers {
  const n = Math.max(1, Math.floor(opts.workers));
  const log = opts.log.child({ component: 'dns' });
  const threads: Worker[] = [];
  const versions: number[] = [];
  const tids: number[] = [];
  const counters = statsCollector(threads, versions);
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;
  let sent: ServingState['snapshot'] | undefined;

  const server = { ...opts.server };
  const tcpOpen = new SharedArrayBuffer(4);
  const stopBarrier = createStopBarrier();
  const responder = { ...opts.responder, rrlShare: 1 / n };
  const onDeath =
    opts.onWorkerDeath ??
    ((index: number, why: string) => {
      log.fatal({ worker: index, why }, 'a DNS worker thread died: exiting, so that the node restarts whole (its sockets are shared by every worker)');
      process.exit(70);
    });

  let getState = opts.getState;
  const spawned: Promise<FromWorker>[] = [];

  /** A worker's thread, and what it says once told to start (`run`). */
  function spawn(index: number): Promise<FromWorker> {
    const setup: WorkerSetup = { index, workers: n, listen: opts.listen, server, responder, tcpOpen, stopBarrier, logLevel: log.level };
    const w = new Worker(workerUrl, { workerData: setup, name: `dns-${index}` });
    threads[index] = w;
    return (spawned[index] = new Promise((resolve, reject) => {
      w.on('message', (m: FromWorker) => {
        if (m.type === 'listening' || m.type === 'ready') {
          if (m.tid !== undefined) tids[index] = m.tid;
          resolve(m);
        }
        else if (m.type === 'failed') reject(new Error(m.error));
        else if (m.type === 'applied') versions[index] = m.version;
        else if (m.type === 'log') opts.log[m.level](m.obj, m.msg); // its lines name their component already
        else if (m.type === 'stats') counters.collect(index, m);
      });
      w.on('error', (err) => {
        reject(err);
        if (!stopping) onDeath(index, err.message);
      });
      w.on('exit', (code) => {
        reject(new Error(`DNS worker ${index} exited (${code}) before it listened`));
        if (!stopping) onDeath(index, `exit code ${code}`);
      });
    }));
  }

  // Awaited by run(); a worker that dies before (a warm one never started) must not be an unhandled rejection.
  const spawnQuietly = (index: number) => {
    const p = spawn(index);
    p.catch(() => undefined);
    return p;
  };

  function run(index: number, inherit?: readonly SocketDescriptors[]): Promise<FromWorker> {
    const started = spawned[index] ?? spawnQuietly(index);
    const snapshot = getState!().snapshot;
    versions[index] = snapshot.version;
    threads[index].postMessage({ type: 'start', snapshot, inherit, geoip: geoIpFiles() } satisfies ToWorker);
    return started;
  }

  /** Hands a new snapshot to every worker (structured clone: one copy each, once per change). */
  let sentAt = 0;
  const coalesceMs = opts.coalesceMs ?? 200;
  function follow(): void {
    const snapshot = getState!().snapshot;
    if (snapshot === sent || performance.now() - sentAt < coalesceMs) return;
    sent = snapshot;
    sentAt = performance.now();
    const m: ToWorker = { type: 'snapshot', snapshot };
    for (const w of threads) w.postMessage(m);
  }

  return {
    size: n,
    versions: () => [...versions],
    threadIds: () => tids.filter((t) => t !== undefined),
    warm() {
      if (spawned[0] === undefined) void spawnQuietly(0);
    },
    async start(state) {
      getState = state ?? getState;
      if (!getState) throw new Error('createDnsWorkers: start() needs the state to answer from');
      sent = getState().snapshot;
      const first = await run(0);
      if (first.type !== 'listening') throw new Error('DNS worker 0 did not listen');
      await Promise.all(Array.from({ length: n - 1 }, (_, k) => run(k + 1, first.descriptors)));
      // A snapshot that changed while they started: handed over now.
      follow();
      timer = setInterval(follow, opts.pollMs ?? 5);
      timer.unref();
      log.info({ workers: n, udp: first.udp.map(fmt), tcp: first.tcp.map(fmt) }, 'dns listening');
      return { udp: first.udp, tcp: first.tcp };
    },
    async stop() {
      stopping = true;
      clearInterval(timer);
      await stopAll(threads, new Int32Array(stopBarrier));
      threads.length = 0;
      log.info('dns stopped');
    },
    stats: counters.ask,
  };
}

/** Asks every worker for its counters, and adds up the answers (a worker silent for a second is left out of that reading). */
function statsCollector(threads: Worker[], versions: number[]) {
  const pending = new Map<number, { left: number; parts: Part[]; resolve: (s: PoolStats) => void }>();
  let nextId = 1;
  const summed = (parts: Part[]): PoolStats => ({
    ...sumStats(parts),
    workers: parts.map((x) => ({ index: x.index, queries: x.responder.queries, version: versions[x.index], heap: x.heap })).sort((a, b) => a.index - b.index),
  });
  return {
    collect(this: void, index: number, m: FromWorker & { type: 'stats' }): void {
      const p = pending.get(m.id);
      if (!p) return;
      p.parts.push({ index, responder: m.responder, server: m.server, heap: m.heap });
      if (--p.left === 0) {
        pending.delete(m.id);
        p.resolve(summed(p.parts));
      }
    },
    ask(this: void): Promise<PoolStats> {
      const id = nextId++;
      return new Promise<PoolStats>((resolve) => {
        pending.set(id, { left: threads.length, parts: [], resolve });
        for (const w of threads) w.postMessage({ type: 'stats', id } satisfies ToWorker);
        setTimeout(() => {
          const p = pending.get(id);
          if (!p) return;
          pending.delete(id);
          resolve(summed(p.parts));
        }, 1000).unref();
      });
    },
  };
}

/**
 * Every worker stops at once: their sockets are one per address, shared by all of them, so the
 * first to close one closes it for all. So first every worker stops answering (its sockets left
 * open: a worker still sending on a descriptor another has closed would fail), and then all close
 * together, through the stop barrier (barrier.ts says why: a descriptor number closed twice).
 */
async function stopAll(threads: Worker[], barrier: Int32Array): Promise<void> {
  const said = (w: Worker, type: 'quiet' | 'stopped', ms: number) =>
    new Promise<void>((resolve) => {
      const done = setTimeout(resolve, ms);
      const on = (m: FromWorker) => {
        if (m.type !== type) return;
        clearTimeout(done);
        w.off('message', on);
        resolve();
      };
      w.on('message', on);
      w.once('exit', () => resolve());
    });
  await Promise.all(threads.map((w) => (w.postMessage({ type: 'quiesce' } satisfies ToWorker), said(w, 'quiet', 1000))));
  Atomics.store(barrier, PARTIES, threads.length);
  const stopped = threads.map((w) => (w.postMessage({ type: 'stop' } satisfies ToWorker), said(w, 'stopped', 2000)));
  // Blocking, on purpose: while the workers close, this thread opens nothing that a second close could hit.
  awaitClosed(barrier);
  await Promise.all(stopped);
  await Promise.all(threads.map((w) => w.terminate()));
}

const fmt = (a: AddressInfoLike) => (a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
