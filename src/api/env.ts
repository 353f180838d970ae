import type { Context } from 'hono';

/** admin: everything; viewer: every read; probe: what probe agents and balancers call; dns: the snapshots DNS nodes answer from. */
export type Role = 'admin' | 'viewer' | 'probe' | 'dns';
export type Principal = { role: Role; name: string; tokenId?: number };
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
