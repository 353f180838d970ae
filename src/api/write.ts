import type { Context } from 'hono';
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
 * write came first), then control rebuilds the snapshot at once.
 */
export async function writeThrough<T>(
  c: Context<Env>,
  deps: ApiDeps,
  o: { subject: string; before: unknown; after: unknown; status: number; ifMatch?: WriteOptions['ifMatch'] },
  write: (opts: WriteOptions) => Promise<T>,
): Promise<T> {
  const p = c.get('principal');
  const audit = { actor: p.name, role: p.role, action: `${c.req.method} ${c.req.path}`, subject: o.subject, before: o.before, after: o.after, status: o.status };
  // The route made the documents from this replica's copy: the replicated engine checks that etcd's are no newer.
  const result = await write({ audit, ifMatch: o.ifMatch, fromCopy: true });
  deps.control.tick();
  return result;
}
