import { eq } from 'drizzle-orm';
import * as schema from './schema.js';
import type { Db } from './database.js';

/** A monotonically increasing counter kept in the `meta` table (configuration and health versions). */
export function metaCounter(db: Db, key: string) {
  const { meta } = schema;
  const get = (): number => Number(db.select().from(meta).where(eq(meta.key, key)).get()?.value ?? 0);
  /** One more than now, or `atLeast` when that is more. */
  const bump = (atLeast = 0): number => {
    const next = Math.max(get() + 1, atLeast);
    db.insert(meta).values({ key, value: String(next) }).onConflictDoUpdate({ target: meta.key, set: { value: String(next) } }).run();
    return next;
  };
  return { get, bump };
}
