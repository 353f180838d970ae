import type { ApplyResult } from '../db/documents.js';
import type { Store } from '../db/store.js';
import { loadDocuments } from './load.js';

/**
 * Fills an empty database from the YAML folder (normally `regions/`): the
 * database is the runtime truth, files only seed it on first start. Returns
 * undefined when the database already had configuration; throws a
 * ConfigError when the files are invalid.
 */
export function seedIfEmpty(store: Pick<Store, 'isEmpty' | 'apply'>, regionsDir: string): ApplyResult | undefined {
  if (!store.isEmpty()) return undefined;
  return store.apply(loadDocuments([regionsDir]), { actor: 'seed', reason: `seeded from ${regionsDir}` });
}
