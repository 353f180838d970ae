// The writes of the embedded engine: each one SQLite transaction with its
// audit row (and, for overrides, its event). A conditional write is checked
// in the same synchronous transaction, so nothing can come between.
import type { AuditStore } from './audit.js';
import { contentEtag, overrideChange, StaleWrite, type DocRef, type WriteOptions, type Writes } from './writes.js';
import type { HealthStore } from './health-store.js';
import type { Store } from './store.js';

export function createSqliteWrites(deps: { store: Store; healthStore: HealthStore; audit?: Pick<AuditStore, 'record'>; now?: () => number }): Writes {
  const { store, healthStore } = deps;
  const now = deps.now ?? Date.now;

  const current = (ref: DocRef): unknown => {
    const config = store.getConfig();
    return ref.kind === 'zone' ? config?.zone : config?.regions.find((r) => r.id === ref.id);
  };

  /** Runs the write with its condition and its audit row, in one transaction; a throw becomes the promise's rejection. */
  const write = <T>(o: WriteOptions | undefined, fn: () => T): Promise<T> =>
    new Promise<T>((resolve) =>
      // Synchronous inside: nothing can come between the condition and the write.
      resolve(
        store.transaction(() => {
          if (o?.ifMatch) {
            const doc = current(o.ifMatch.ref);
            const etag = doc === undefined ? undefined : contentEtag(doc);
            if (etag !== o.ifMatch.etag) throw new StaleWrite(etag);
          }
          const r = fn();
          if (o?.audit) deps.audit?.record(o.audit);
          return r;
        }),
      ),
    );

  return {
    etag: (_ref, doc) => contentEtag(doc),
    apply: (docs, o) => write(o, () => store.apply(docs, o)),
    deleteRegion: (id, o) => write(o, () => store.deleteRegion(id, o)),
    setOverride: (ov, o) =>
      write(o, () => {
        const before = healthStore.listOverrides().find((x) => x.subject === ov.subject);
        const change = overrideChange(before, ov, now());
        if (!change) return { changed: false };
        if (change.after) healthStore.setOverride({ subject: ov.subject, mode: change.after.mode, reason: change.after.reason, actor: ov.actor });
        else healthStore.clearOverride(ov.subject);
        store.recordEvent(change.event);
        return { changed: true };
      }),
  };
}
