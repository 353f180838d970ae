import { BUSY_TIMEOUT_MS, type Db } from './database.js';

/**
 * What can go wrong under SQLite that is not a bug: the file or its disk, or
 * another process holding the lock. Such errors are classified here so the API
 * answers 503 with a clear message and control's background writes back off
 * instead of crashing.
 */
export type StorageFaultKind = 'busy' | 'read-only' | 'full' | 'io' | 'cannot-open' | 'corrupt' | 'unavailable';

/** A storage fault, as thrown by the stores' writes (and recognised in raw SQLite errors). */
export class StorageError extends Error {
  constructor(
    readonly kind: StorageFaultKind,
    /** The SQLite extended result code, e.g. `SQLITE_READONLY`, `SQLITE_FULL`. */
    readonly code: string,
    message: string,
    /** For `busy`: when a retry is worthwhile (seconds). */
    readonly retryAfterS?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
  }
}

const KINDS: [RegExp, StorageFaultKind][] = [
  [/^SQLITE_(BUSY|LOCKED)/, 'busy'],
  [/^SQLITE_READONLY/, 'read-only'],
  [/^SQLITE_FULL/, 'full'],
  [/^SQLITE_IOERR/, 'io'],
  [/^SQLITE_CANTOPEN/, 'cannot-open'],
  [/^SQLITE_(CORRUPT|NOTADB)/, 'corrupt'],
];

/** The SQLite error somewhere in `err`'s cause chain (drizzle wraps them). */
function sqliteCause(err: unknown): { code: string; message: string } | undefined {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('SQLITE_')) return { code, message: (e as Error).message };
  }
  return undefined;
}

/** The storage fault `err` is, or undefined for anything else (a bug, a constraint, a ConfigError). */
export function storageFault(err: unknown, busyTimeoutMs = BUSY_TIMEOUT_MS): StorageError | undefined {
  if (err instanceof StorageError) return err;
  const cause = sqliteCause(err);
  if (!cause) return undefined;
  const kind = KINDS.find(([re]) => re.test(cause.code))?.[1];
  if (!kind) return undefined;
  const detail = `${cause.message} (${cause.code})`;
  const message = {
    busy: `the database is locked: another connection held it for over ${busyTimeoutMs / 1000} s: ${detail}; nothing was written, retry shortly`,
    'read-only': `the database is read-only: ${detail}; nothing was written`,
    full: `the disk is full: ${detail}; nothing was written`,
    io: `disk I/O error on the database: ${detail}; nothing was written`,
    'cannot-open': `cannot open the database file: ${detail}`,
    corrupt: `the database file is corrupt: ${detail}`,
    // Never from SQLite: the replicated store's own (db/etcd/fault.ts).
    unavailable: `the replicated store cannot be reached: ${detail}`,
  }[kind];
  return new StorageError(kind, cause.code, message, kind === 'busy' ? Math.max(1, Math.ceil(busyTimeoutMs / 1000)) : undefined, { cause: err });
}

export type StorageStats = {
  /** Storage faults since start, by kind. */
  faults: Record<StorageFaultKind, number>;
  /** Writes refused at once because the database was found locked a moment ago. */
  shortCircuited: number;
  /** Set while the latest write failed: since when (ms, wall clock), and why. */
  failing?: { kind: StorageFaultKind; since: number; message: string };
};

export type StorageListener = (change: { failing: true; error: StorageError } | { failing: false; afterMs: number; kind: StorageFaultKind }) => void;

/**
 * One database connection's writes: classifies faults, remembers whether the
 * database is failing, and paces retries. While the database is locked each
 * write would hold the event loop for the busy timeout (a DNS responder in the
 * same process with it), so for a short back-off after SQLITE_BUSY further
 * writes fail at once with the same error.
 */
export interface StorageGuard {
  /** Runs a write; nested calls (a write inside a transaction) just run. A storage fault is thrown as a StorageError. */
  write<T>(fn: () => T): T;
  /** For background writers: false while backing off after a fault. */
  retryDue(): boolean;
  stats(): StorageStats;
  /** Told when writes start failing and when they work again. */
  subscribe(fn: StorageListener): () => void;
}

// At least twice the busy timeout: while a lock is held, at most about a third of the time is spent waiting on it.
const BACKOFF_MIN_MS = 2 * BUSY_TIMEOUT_MS;
const BACKOFF_MAX_MS = 10_000;

export function createStorageGuard(opts: { busyTimeoutMs?: number; monotonic?: () => number; now?: () => number } = {}): StorageGuard {
  const busyTimeoutMs = opts.busyTimeoutMs ?? BUSY_TIMEOUT_MS;
  const mono = opts.monotonic ?? (() => performance.now());
  const now = opts.now ?? Date.now;
  const faults: Record<StorageFaultKind, number> = { busy: 0, 'read-only': 0, full: 0, io: 0, 'cannot-open': 0, corrupt: 0, unavailable: 0 };
  const listeners = new Set<StorageListener>();
  let depth = 0;
  let shortCircuited = 0;
  let failing: { error: StorageError; since: number; sinceMono: number } | undefined;
  let backoffMs = 0;
  let retryAt = 0;

  function failed(error: StorageError): void {
    faults[error.kind]++;
    backoffMs = Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, backoffMs * 2));
    retryAt = mono() + backoffMs;
    const first = !failing;
    failing = { error, since: failing?.since ?? now(), sinceMono: failing?.sinceMono ?? mono() };
    if (first) for (const fn of listeners) fn({ failing: true, error });
  }

  function succeeded(): void {
    backoffMs = 0;
    retryAt = 0;
    if (!failing) return;
    const { sinceMono, error } = failing;
    failing = undefined;
    for (const fn of listeners) fn({ failing: false, afterMs: mono() - sinceMono, kind: error.kind });
  }

  return {
    write(fn) {
      if (depth > 0) return fn();
      if (failing?.error.kind === 'busy' && mono() < retryAt) {
        shortCircuited++;
        const e = failing.error;
        throw new StorageError(e.kind, e.code, e.message, Math.max(1, Math.ceil((retryAt - mono()) / 1000)));
      }
      depth++;
      try {
        const result = fn();
        depth--;
        succeeded();
        return result;
      } catch (err) {
        depth--;
        const fault = storageFault(err, busyTimeoutMs);
        if (!fault) throw err;
        failed(fault);
        // Retry-After: when the back-off ends.
        throw fault.kind === 'busy' ? new StorageError(fault.kind, fault.code, fault.message, Math.ceil(backoffMs / 1000), { cause: err }) : fault;
      }
    },
    retryDue: () => !failing || mono() >= retryAt,
    stats: () => ({ faults: { ...faults }, shortCircuited, ...(failing ? { failing: { kind: failing.error.kind, since: failing.since, message: failing.error.message } } : {}) }),
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}

const guards = new WeakMap<object, StorageGuard>();

/** The guard of a connection: every store over one database shares it. */
export function guardOf(db: Db): StorageGuard {
  let g = guards.get(db.$client);
  if (!g) guards.set(db.$client, (g = createStorageGuard()));
  return g;
}

/**
 * A write made from a replica's copy of a document (an API merge, a service put into the zone's
 * settings) while etcd holds a newer one: nothing was written. Made again from the copy once it
 * holds `revision`, the write goes through; answered 503 (retry) when that keeps happening.
 */
export class CopyBehind extends StorageError {
  constructor(
    /** The document's revision in etcd, which the copy must reach first. */
    readonly revision: number,
    message: string,
  ) {
    super('busy', 'COPY_BEHIND', message, 1);
    this.name = 'CopyBehind';
  }
}
