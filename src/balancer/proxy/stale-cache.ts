// The stale cache: per model pool, off unless configured, the last good
// answers of deterministic requests (`temperature: 0`, or a configured key
// header), bounded in entries, bytes and age. They are served only where the
// request would get a 503 — no ready instance of the model or its fallback,
// the queue full or past its deadline — marked `x-arus-cache: stale`, as
// HTTP's stale-if-error (RFC 5861). Never while an instance can serve.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { StaleCacheDoc } from '../../config/scaling-schema.js';

/** Per model: its cache's settings. */
export type StaleCacheSettings = Record<string, StaleCacheDoc>;

/** An answer as kept: always a whole 200 (an SSE stream's full bytes, replayed at once). */
export type StaleEntry = { status: number; contentType?: string; body: Buffer; storedAt: number };

/** What a completed answer gives to be kept. */
export type StaleAnswer = { status: number; contentType?: string; chunks: readonly Buffer[]; bytes: number };

export type StaleHit = StaleEntry & { ageMs: number };

export type StaleCacheStats = {
  /** Requests answered from the cache, and cacheable requests that found nothing there (they got the 503). */
  served: number;
  misses: number;
  /** Per model with a cache: what it holds now. */
  models: Record<string, { entries: number; bytes: number }>;
};

export interface StaleCache {
  /** New settings: a model's cache whose settings changed starts empty, one no longer configured is dropped. */
  configure(settings: StaleCacheSettings): void;
  /** Whether any model has a cache now. */
  readonly configured: boolean;
  /**
   * The entry's name for a request, or undefined when it is not cacheable: its
   * model has no cache (the only cost then: one map lookup), or it has no key
   * header value and its `temperature` is not exactly 0.
   */
  keyOf(model: string, path: string, headers: IncomingHttpHeaders, body: Buffer, parsed: Record<string, unknown>): string | undefined;
  /** The largest body a model's cache keeps (0 without a cache): a longer answer is not collected. */
  maxEntryBytes(model: string): number;
  /** Keeps a 200 answer whose body fits; anything else is ignored. */
  store(model: string, key: string, answer: StaleAnswer): void;
  /** The entry and its age, if one is there and within its TTL (counted as served, or as a miss). */
  lookup(model: string, key: string): StaleHit | undefined;
  stats(): StaleCacheStats;
}

export type StaleCacheOptions = {
  /** The clock of the TTLs and ages, in ms; `performance` unless set (tests move it by hand). */
  perf?: { now(): number };
};

/** An entry may take at most this share of its cache's bytes. */
const ENTRY_SHARE = 8;

type ModelCache = { doc: StaleCacheDoc; text: string; lru: LRUCache<string, StaleEntry>; maxEntryBytes: number };

export function createStaleCache(settings: StaleCacheSettings, opts: StaleCacheOptions = {}): StaleCache {
  const perf = opts.perf ?? performance;
  const caches = new Map<string, ModelCache>();
  let served = 0;
  let misses = 0;

  function make(doc: StaleCacheDoc, text: string): ModelCache {
    const lru = new LRUCache<string, StaleEntry>({
      max: doc.maxEntries,
      maxSize: doc.maxBytes,
      sizeCalculation: (e) => Math.max(1, e.body.length),
      ttl: doc.ttlMs,
      perf,
    });
    return { doc, text, lru, maxEntryBytes: Math.floor(doc.maxBytes / ENTRY_SHARE) };
  }

  function configure(next: StaleCacheSettings): void {
    for (const model of [...caches.keys()]) if (!Object.hasOwn(next, model)) caches.delete(model);
    for (const [model, doc] of Object.entries(next)) {
      const text = JSON.stringify(doc);
      if (caches.get(model)?.text !== text) caches.set(model, make(doc, text));
    }
  }
  configure(settings);

  return {
    configure,
    get configured() {
      return caches.size > 0;
    },
    keyOf(model, path, headers, body, parsed) {
      const c = caches.get(model);
      if (!c) return undefined;
      const named = c.doc.keyHeader === undefined ? undefined : headers[c.doc.keyHeader];
      const name = typeof named === 'string' && named !== '' ? named : undefined;
      if (name === undefined && parsed.temperature !== 0) return undefined;
      // Answers are never shared across credentials; fields are length-prefixed so none can run into the next.
      const auth = headers.authorization ?? '';
      const h = createHash('sha256');
      for (const part of [path, model, auth]) h.update(`${part.length}:${part}\n`);
      if (name !== undefined) h.update(`h${name.length}:${name}`);
      else h.update(`b${body.length}:`).update(body);
      return h.digest('base64url');
    },
    maxEntryBytes: (model) => caches.get(model)?.maxEntryBytes ?? 0,
    store(model, key, a) {
      const c = caches.get(model);
      if (!c || a.status !== 200 || a.bytes > c.maxEntryBytes) return;
      // A copy of its own: the chunks are views of socket reads, which a kept entry must not pin.
      const body = Buffer.allocUnsafeSlow(a.bytes);
      let at = 0;
      for (const chunk of a.chunks) at += chunk.copy(body, at);
      if (at !== a.bytes) return;
      c.lru.set(key, { status: a.status, ...(a.contentType !== undefined ? { contentType: a.contentType } : {}), body, storedAt: perf.now() });
    },
    lookup(model, key) {
      const c = caches.get(model);
      const e = c?.lru.get(key);
      // lru-cache reads its clock at most once a millisecond: the age is checked here too.
      const ageMs = e ? Math.max(0, perf.now() - e.storedAt) : 0;
      if (!c || !e || ageMs > c.doc.ttlMs) {
        if (e) c!.lru.delete(key);
        misses++;
        return undefined;
      }
      served++;
      return { ...e, ageMs };
    },
    stats() {
      const models: StaleCacheStats['models'] = {};
      for (const [model, c] of caches) models[model] = { entries: c.lru.size, bytes: c.lru.calculatedSize };
      return { served, misses, models };
    },
  };
}

/** A kept answer for the client: its status, content type and body in one write, marked stale with its age (whole seconds). */
export function sendStale(res: ServerResponse, model: string, hit: StaleHit): void {
  res.writeHead(hit.status, {
    ...(hit.contentType !== undefined ? { 'content-type': hit.contentType } : {}),
    'content-length': hit.body.length,
    'x-arus-cache': 'stale',
    'x-arus-cache-model': model,
    age: String(Math.floor(hit.ageMs / 1000)),
  });
  res.end(hit.body);
}
