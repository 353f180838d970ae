// Writes of the configuration, the overrides and the audit trail, as one
// contract with two engines: SQLite (db/sqlite-writes.ts), where a write is a
// transaction of the file, and etcd (db/etcd/writes.ts), where it is an etcd
// transaction and is acknowledged once this replica's read model holds it.
// Readers keep reading the SQLite stores; only writes go through here.
import { createHash } from 'node:crypto';
import type { NewAuditEntry } from './audit.js';
import { canonicalJson, type ApplyOptions, type ApplyResult, type Documents } from './documents.js';
import type { Override } from './health-store.js';
import type { NewEvent } from './history.js';

/** The document a conditional write is about: the zone's settings (services live there) or one region. */
export type DocRef = { kind: 'zone' } | { kind: 'region'; id: string };

export type WriteOptions = {
  /** The audit row, written with the change (both there, or neither). */
  audit?: NewAuditEntry;
  /** Write only if the document still has this ETag (If-Match); else a StaleWrite. */
  ifMatch?: { ref: DocRef; etag: string };
  /**
   * The documents were made from this replica's copy as it is now (an API write: a merge, a
   * service put into the zone's settings). The replicated engine refuses the write, to be retried,
   * when etcd holds a newer version of one of them than that copy (another replica's write came
   * first and would be overwritten); the SQLite engine's copy is the store itself.
   */
  fromCopy?: boolean;
};

export type OverrideWrite = { subject: string; mode: 'drain' | 'force-up' | 'none'; reason: string; actor?: string };

/** The document changed since the ETag the write was conditional on: answered 412. */
export class StaleWrite extends Error {
  constructor(readonly etag: string | undefined) {
    super(etag === undefined ? 'the document no longer exists' : `the document has changed: its ETag is now ${etag}`);
    this.name = 'StaleWrite';
  }
}

export interface Writes {
  /** The ETag of a document as stored now: a hash of its content (SQLite), or the etcd revision of its key. */
  etag(ref: DocRef, doc: unknown): string;
  /** `Store.apply`, with its audit row and an optional condition. */
  apply(docs: Documents, opts?: ApplyOptions & WriteOptions): Promise<ApplyResult>;
  /** `Store.deleteRegion`, with its audit row and an optional condition. */
  deleteRegion(id: string, opts?: ApplyOptions & WriteOptions & { unlinkServices?: boolean }): Promise<{ version: number; deleted: boolean }>;
  /** Sets or lifts an override (the subject is checked by the caller), recorded as an event; `changed` false when it was already so. */
  setOverride(o: OverrideWrite, opts?: WriteOptions): Promise<{ changed: boolean }>;
}

/** A hash of the document's canonical JSON: the ETag when there is no revision to give. */
export function contentEtag(doc: unknown): string {
  return `"${createHash('sha256').update(canonicalJson(doc)).digest('base64url').slice(0, 22)}"`;
}

/** The next state of an override, and the event that records it; undefined when nothing changes. */
export function overrideChange(before: Override | undefined, o: OverrideWrite, now: number): { after: Override | undefined; event: NewEvent } | undefined {
  const region = o.subject.slice(o.subject.indexOf(':') + 1).split('/')[0];
  const reason = `${o.reason}${o.actor ? ` (by ${o.actor})` : ''}`;
  if (o.mode === 'none') {
    if (!before) return undefined;
    return { after: undefined, event: { time: now, kind: before.mode === 'drain' ? 'undrain' : 'force-up.cleared', subject: o.subject, oldState: before.mode, newState: 'none', reason, region } };
  }
  if (before?.mode === o.mode && before.reason === o.reason) return undefined;
  const after: Override = { subject: o.subject, mode: o.mode, reason: o.reason, actor: o.actor ?? null, time: now };
  return { after, event: { time: now, kind: o.mode === 'drain' ? 'drain' : 'force-up', subject: o.subject, oldState: before?.mode ?? 'none', newState: o.mode, reason, region } };
}
