// Configuration documents as every store engine keeps them: what apply and
// deleteRegion promise, the subjects their events name, and the canonical
// JSON by which two documents compare equal.
import type { Config, RegionDoc, ZoneDoc } from '../config/schema.js';

/** The documents an apply writes: the zone's settings and any number of regions. */
export type Documents = { zone?: ZoneDoc; regions: RegionDoc[] };

/**
 * What makes a document valid: the configuration layer's rules, given to the
 * store (which knows tables, not schemas). Each throws its own error (a
 * ConfigError) naming the source, field and reason.
 */
export type DocumentRules = {
  parseZone(input: unknown, source: string): ZoneDoc;
  parseRegion(input: unknown, source: string): RegionDoc;
  /** Throws when the whole configuration would be invalid. */
  validate(docs: Documents): unknown;
  /** The error for one region given twice in the same apply. */
  duplicate(source: string, id: string): Error;
};

export type ApplyOptions = {
  /** Written as the events' reason instead of the generated one. */
  reason?: string;
  /** Who applied it (a token's name, `cli`, `seed`); kept in the events' data. */
  actor?: string;
};

export type ApplyResult = {
  /** The configuration version after the call (unchanged when nothing changed). */
  version: number;
  /** Subjects of the documents written: `zone-settings`, `region:<id>`. */
  changed: string[];
};

/** The configuration documents and their version. */
export interface ConfigDocuments {
  /** The whole configuration; undefined until zone settings have been applied. */
  getConfig(): Config | undefined;
  /** True when there are neither zone settings nor regions. */
  isEmpty(): boolean;
  /**
   * Upserts documents in one transaction. The resulting whole configuration
   * is validated first; when invalid nothing is written and a ConfigError is
   * thrown. Unchanged documents are skipped; each changed one gets a
   * `config.applied` event, and the version goes up by one if anything changed.
   */
  apply(docs: Documents, opts?: ApplyOptions): ApplyResult;
  /**
   * Deletes a region in one transaction; refused (ConfigError) when the rest
   * of the configuration still names it — unless `unlinkServices`, which also
   * takes it out of every service's `regions` list.
   */
  deleteRegion(id: string, opts?: ApplyOptions & { unlinkServices?: boolean }): { version: number; deleted: boolean };
  /** The configuration version counter: 0 before the first apply. */
  version(): number;
}

export const ZONE_SUBJECT = 'zone-settings';
export const regionSubject = (id: string) => `region:${id}`;

/** JSON with object keys sorted, so equal documents compare equal as text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** Top-level fields whose values differ, for a readable reason. */
export function changedFields(before: object, after: object): string[] {
  const a = before as Record<string, unknown>;
  const b = after as Record<string, unknown>;
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => canonicalJson(a[k]) !== canonicalJson(b[k])).sort();
}
