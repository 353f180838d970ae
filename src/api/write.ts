import { createHash } from 'node:crypto';
import type { Context } from 'hono';
import { canonicalJson } from '../db/documents.js';
import type { ApiDeps } from './deps.js';
import type { Env } from './env.js';

/** A strong ETag of a document's canonical JSON: `If-Match` with it makes a write conditional. */
export function etag(doc: unknown): string {
  return `"${createHash('sha256').update(canonicalJson(doc)).digest('base64url').slice(0, 22)}"`;
}

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

/** False when the request's If-Match names another version of the document. */
export function matches(c: Context, doc: unknown): boolean {
  const want = c.req.header('if-match');
  if (!want || want.trim() === '*') return true;
  return want.split(',').map((s) => s.trim()).includes(etag(doc));
}

/**
 * A write through the API: the change and its audit row in one transaction
 * (both there, or neither: a storage fault rolls back the whole), then control
 * rebuilds the snapshot at once.
 */
export function writeThrough<T>(c: Context<Env>, deps: ApiDeps, write: () => T, entry: (result: T) => { subject: string; before: unknown; after: unknown; status: number }): T {
  const p = c.get('principal');
  const result = deps.store.transaction(() => {
    const r = write();
    deps.audit?.({ actor: p.name, role: p.role, action: `${c.req.method} ${c.req.path}`, ...entry(r) });
    return r;
  });
  deps.control.tick();
  return result;
}
