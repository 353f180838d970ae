import type { Context } from 'hono';
import { CopyBehind } from '../db/faults.js';
import { contentEtag, type DocRef, type WriteOptions } from '../db/writes.js';
import type { ApiDeps } from './deps.js';
import type { Env } from './env.js';

/** RFC 7396 JSON Merge Patch: objects merge, null deletes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** A strong ETag of a document's content (for documents the stores do not version: a balancer's section). */
export const etag = (doc: unknown): string => contentEtag(doc);

/** False when the request's If-Match names another version of the document than `etag`. */
export function matches(c: Context, etag: string): boolean {
  const want = c.req.header('if-match');
  if (!want || want.trim() === '*') return true;
  return want.split(',').map((s) => s.trim()).includes(etag);
}

/** A conditional write's condition: the ETag the request's If-Match matched, checked again by the store as it writes. */
export function condition(c: Context, ref: DocRef, etag: string | undefined): WriteOptions['ifMatch'] {
  const want = c.req.header('if-match');
  return want && want.trim() !== '*' && etag !== undefined ? { ref, etag } : undefined;
}

/**
 * A write through the API: the change and its audit row together (both there,
 * or neither: a storage fault leaves nothing), conditional on the document's
 * ETag when the request has If-Match (a StaleWrite, answered 412, when another
 * write came first), then control rebuilds the snapshot at once. A route that
 * made the documents from its copy of others (a merge patch, a service put
 * into the zone's settings) says `fromCopy` and runs in againFromNewerCopy.
 */
export async function writeThrough<T>(
  c: Context<Env>,
  deps: ApiDeps,
  o: { subject: string; before: unknown; after: unknown; status: number; ifMatch?: WriteOptions['ifMatch']; fromCopy?: boolean },
  write: (opts: WriteOptions) => Promise<T>,
): Promise<T> {
  const p = c.get('principal');
  const audit = { actor: p.name, role: p.role, action: `${c.req.method} ${c.req.path}`, subject: o.subject, before: o.before, after: o.after, status: o.status };
  // fromCopy: the route made the documents from this replica's copy (a merge): the replicated engine checks that etcd's are no newer.
  const result = await write({ audit, ifMatch: o.ifMatch, fromCopy: o.fromCopy });
  deps.control.tick();
  return result;
}

/** How often a write is made again from a copy that another write overtook (each time after the copy caught up). */
const COPY_ATTEMPTS = 8;

/**
 * Runs a write route's work (reading this replica's copy, making the documents, writing them)
 * again when the replicated engine finds etcd's documents newer than the copy they were made
 * from (CopyBehind: it waited for the copy to catch up). Concurrent writes to one document on
 * several replicas then each go through, in turn, instead of undoing each other or failing.
 */
export async function againFromNewerCopy<T>(run: () => T | Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (!(err instanceof CopyBehind) || attempt >= COPY_ATTEMPTS) throw err;
    }
  }
}
