import type { Context } from 'hono';
import type { Principal } from '../db/tokens.js';

export type { Principal, Role } from '../db/tokens.js';
export type Env = { Variables: { principal: Principal } };
export type FieldError = { path: string; message: string };

/**
 * The JSON error body of every 4xx (and of a 503 when the database cannot be
 * written): { error, fields? }. Typed `never` so a route handler can return it
 * whatever success type its route declares.
 */
export function problem(c: Context, status: 400 | 401 | 403 | 404 | 409 | 412 | 413 | 429 | 503, error: string, fields?: FieldError[]): never {
  return c.json({ error, ...(fields ? { fields } : {}) }, status) as never;
}

/** Every issue of a failed zod parse as `{ path, message }`, the path prefixed by where it was (body, query, path). */
export function fieldsOf(issues: readonly { path: readonly PropertyKey[]; message: string }[], where?: string): FieldError[] {
  return issues.map((i) => ({ path: [where, ...i.path.map(String)].filter(Boolean).join('.') || '(root)', message: i.message }));
}
