// What the main thread and its DNS worker threads say to each other. Every
// message is structured-cloned: a snapshot crosses once per change (never per
// query), and a worker answers from its own copy.
import type { Snapshot } from '../../snapshot/snapshot.js';
import type { ResponderStats } from '../responder-stats.js';
import type { DnsServerStats, ListenAddress, SocketDescriptors } from '../server.js';
import type { GeoIpFile } from '../../geo/geoip.js';

/** What a worker starts with (`workerData`). */
export type WorkerSetup = {
  /** 0 binds the sockets; the others answer on them too (`inherit`). */
  readonly index: number;
  readonly workers: number;
  readonly listen: readonly ListenAddress[];
  /** Server and responder knobs (plain data: createDnsServer's and createResponder's options). */
  readonly server: Readonly<Record<string, number>>;
  readonly responder: Readonly<Record<string, unknown>>;
  /** The node's open TCP connections (an Int32Array's one slot), which every worker counts. */
  readonly tcpOpen: SharedArrayBuffer;
  /**
   * The stop barrier (an Int32Array of 3): [0] workers arrived, [1] workers that closed the shared
   * sockets, [2] how many take part (set by the main thread before it says stop). See stopAll.
   */
  readonly stopBarrier: SharedArrayBuffer;
  /** pino level for the worker's own log lines (they go to the main thread's log). */
  readonly logLevel: string;
};

/**
 * A worker is spawned before the node has its first snapshot (its modules load meanwhile, on
 * another core), and told to start with it.
 */
export type StartWorker = {
  readonly type: 'start';
  /** The first snapshot to answer from. */
  readonly snapshot: Snapshot;
  /** The sockets worker 0 bound, for workers 1…N-1. */
  readonly inherit?: readonly SocketDescriptors[];
  /** GeoIP databases the main thread holds in shared memory: read once for every thread. */
  readonly geoip: readonly GeoIpFile[];
};

export type ToWorker =
  | StartWorker
  | { readonly type: 'snapshot'; readonly snapshot: Snapshot }
  | { readonly type: 'stats'; readonly id: number }
  | { readonly type: 'quiesce' }
  | { readonly type: 'stop' };

export type FromWorker =
  | { readonly type: 'listening'; readonly descriptors: SocketDescriptors[]; readonly udp: AddressInfoLike[]; readonly tcp: AddressInfoLike[]; readonly tid?: number }
  | { readonly type: 'ready'; readonly tid?: number }
  | { readonly type: 'applied'; readonly version: number }
  | { readonly type: 'stats'; readonly id: number; readonly responder: ResponderStats; readonly server: DnsServerStats; readonly heap: WorkerHeap }
  | { readonly type: 'log'; readonly level: 'debug' | 'info' | 'warn' | 'error'; readonly obj: Record<string, unknown>; readonly msg: string }
  | { readonly type: 'failed'; readonly error: string }
  | { readonly type: 'quiet' }
  | { readonly type: 'stopped' };

export type AddressInfoLike = { readonly address: string; readonly family: string; readonly port: number };

/** A worker's V8 heap, in bytes: used and reserved by its isolate, and memory outside it its objects hold. */
export type WorkerHeap = { readonly used: number; readonly total: number; readonly external: number };
