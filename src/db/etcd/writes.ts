// The writes of the replicated engine: each one etcd transaction holding the
// documents, the events that record them and the audit row, so that a write
// is there whole or not at all. Configuration writes are optimistic: they read
// the documents, plan against them, and commit only if `config/version` has
// not moved since (else they plan again); a write with If-Match also compares
// its document's revision, which is its ETag; and a write made from this
// replica's copy of a document (the API's: a merge, a service put into the
// zone's settings) is refused, to be retried, when etcd's is newer than that
// copy, rather than undo the write that came first. A write is acknowledged once
// this replica's read model holds it, so the writer reads it back at once.
import { randomBytes } from 'node:crypto';
import type { Etcd3, IKeyValue } from 'etcd3';
import type { Config, RegionDoc, ZoneDoc } from '../../config/schema.js';
import type { NewAuditEntry } from '../audit.js';
import { planApply, planDelete, type CurrentDocuments, type Plan } from '../config-plan.js';
import { canonicalJson, regionSubject, ZONE_SUBJECT, type DocumentRules, type Documents } from '../documents.js';
import type { Override } from '../health-store.js';
import type { NewEvent } from '../history.js';
import { CopyBehind, StorageError } from '../faults.js';
import { overrideChange, StaleWrite, type DocRef, type WriteOptions, type Writes } from '../writes.js';
import { etcdCall } from './fault.js';
import { KEYS, PREFIX } from './keys.js';
import type { ReadModel } from './read-model.js';

const ATTEMPTS = 16;
/** How long a write waits for this replica's read model to show it before it is acknowledged anyway. */
const READ_BACK_MS = 2000;

type Txn = ReturnType<Etcd3['if']>;
type Snapshot = { docs: CurrentDocuments; version: IKeyValue | undefined; mods: Map<string, number> };

const uniqueKey = () => `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
/** Too many writers at once on the same documents: answered 503 with Retry-After, nothing written. */
const conflict = (what: string) => new StorageError('busy', 'CONFLICT', `the ${what} kept changing under this write (${ATTEMPTS} attempts): nothing was written, retry shortly`, 1);
/** The write was made from this replica's copy of a document, and etcd holds a newer one: writing would undo that change. */
const behind = (key: string, revision: number) =>
  new CopyBehind(revision, `another write changed ${key.slice(PREFIX.length)} after this replica's copy of it, from which this write was made: nothing was written, retry shortly`);

export const keyOf = (ref: DocRef) => (ref.kind === 'zone' ? KEYS.zone : KEYS.region(ref.id));
export const revisionEtag = (revision: number | undefined) => (revision === undefined ? undefined : `"${revision}"`);

/** The revisions of this replica's copy of the documents `docs` were made from (now: the caller made them in this turn). */
function baseOf(readModel: ReadModel | undefined, docs: Documents, o: WriteOptions): Map<string, number> | undefined {
  if (!o.fromCopy || !readModel) return undefined;
  const keys = [...(docs.zone ? [KEYS.zone] : []), ...docs.regions.map((r) => KEYS.region(r.id))];
  return new Map(keys.map((k) => [k, readModel.revisionOf(k) ?? 0]));
}

/**
 * The documents made from this replica's copy (`base`: their revisions there) are as etcd holds
 * them (read at one revision with the version the transaction compares: a document cannot move
 * without it), else CopyBehind, once the copy holds etcd's: the caller makes them again from it
 * (the API does: againFromNewerCopy).
 */
async function copyCurrent(readModel: ReadModel | undefined, s: Snapshot, base: Map<string, number> | undefined): Promise<void> {
  for (const [key, revision] of base ?? []) {
    const now = s.mods.get(key) ?? 0;
    if (now === revision) continue;
    await readModel?.waitFor(now, READ_BACK_MS);
    throw behind(key, now);
  }
}

export function createEtcdWrites(deps: { client: Etcd3; rules: DocumentRules; readModel?: ReadModel; now?: () => number }): Writes & { config(): Promise<Config | undefined> } {
  const { client, rules, readModel } = deps;
  const now = deps.now ?? Date.now;

  async function read(): Promise<Snapshot> {
    const res = await etcdCall('read', () => client.getAll().prefix(`${PREFIX}config/`).exec());
    const mods = new Map<string, number>();
    let zone: ZoneDoc | undefined;
    const regions = new Map<string, RegionDoc>();
    let version: IKeyValue | undefined;
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      mods.set(key, Number(kv.mod_revision));
      if (key === KEYS.configVersion) version = kv;
      else if (key === KEYS.zone) zone = rules.parseZone(JSON.parse(kv.value.toString()), `etcd: ${ZONE_SUBJECT}`);
      else if (key.startsWith(KEYS.regionPrefix)) {
        const r = rules.parseRegion(JSON.parse(kv.value.toString()), `etcd: ${regionSubject(key.slice(KEYS.regionPrefix.length))}`);
        regions.set(r.id, r);
      }
    }
    return { docs: { zone, regions }, version, mods };
  }

  // Keys that sort in the order the write made them (one random stem per transaction): the history's order within it.
  const eventPut = (stem: string, i: number, e: NewEvent) =>
    client.put(`${KEYS.eventPrefix}w-${stem}-${String(i).padStart(4, '0')}`).value(JSON.stringify({ ...e, time: e.time ?? now(), region: e.region ?? null }));
  const auditPut = (a: NewAuditEntry) => client.put(KEYS.audit(uniqueKey())).value(JSON.stringify({ ...a, time: a.time ?? now() }));

  /** The transaction's guard: the version has not moved, and the If-Match document still has its revision. */
  function guarded(s: Snapshot, o: WriteOptions | undefined): Txn {
    let txn = client.if(KEYS.configVersion, 'Mod', '==', s.version ? Number(s.version.mod_revision) : 0);
    if (o?.ifMatch) {
      const key = keyOf(o.ifMatch.ref);
      const etag = revisionEtag(s.mods.get(key));
      if (etag !== o.ifMatch.etag) throw new StaleWrite(etag);
      txn = txn.and(key, 'Mod', '==', s.mods.get(key) ?? 0);
    }
    return txn;
  }

  /** Plans against the documents as they are, commits if nothing moved meanwhile, and plans again if it did. */
  async function configWrite(o: WriteOptions | undefined, plan: (s: Snapshot) => Plan | undefined, base?: Map<string, number>): Promise<{ revision: number; plan: Plan | undefined }> {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const s = await read();
      await copyCurrent(readModel, s, base);
      const txn = guarded(s, o);
      const p = plan(s);
      const ops: Parameters<Txn['then']> = [];
      if (p && p.changed.length > 0) {
        const next = (s.version ? Number(s.version.value.toString()) : 0) + 1;
        ops.push(client.put(KEYS.configVersion).value(String(next)));
        if (p.zone) ops.push(client.put(KEYS.zone).value(canonicalJson(p.zone)));
        for (const r of p.put) ops.push(client.put(KEYS.region(r.id)).value(canonicalJson(r)));
        for (const id of p.remove) ops.push(client.delete().key(KEYS.region(id)));
        const stem = uniqueKey();
        p.events.forEach((e, i) => ops.push(eventPut(stem, i, e)));
      }
      if (o?.audit) ops.push(auditPut(o.audit));
      if (ops.length === 0) return { revision: s.version ? Number(s.version.mod_revision) : 0, plan: p };
      const res = await etcdCall('write', () => txn.then(...ops).commit());
      if (res.succeeded) {
        const revision = Number(res.header.revision);
        await readModel?.waitFor(revision, READ_BACK_MS);
        return { revision, plan: p };
      }
      // Someone else wrote first: if it was the If-Match document, this write is stale; else plan again, after a jittered pause.
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * (attempt + 1)));
    }
    throw conflict('configuration');
  }

  return {
    /** The configuration as etcd holds it now (for a command with no read model). */
    async config() {
      const { docs } = await read();
      return docs.zone && { zone: docs.zone, regions: [...docs.regions.values()].sort((a, b) => a.id.localeCompare(b.id)) };
    },
    etag: (ref) => revisionEtag(readModel?.revisionOf(keyOf(ref))) ?? '"0"',

    async apply(docs, o = {}) {
      const { revision, plan } = await configWrite(o, (s) => planApply(s.docs, docs, o, rules, now()), baseOf(readModel, docs, o));
      return { version: revision, changed: plan?.changed ?? [] };
    },

    async deleteRegion(id, o = {}) {
      const { revision, plan } = await configWrite(o, (s) => planDelete(s.docs, id, o, rules, now()));
      return { version: revision, deleted: plan !== undefined };
    },

    async setOverride(ov, o = {}) {
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        const got = await etcdCall('read', () => client.get(KEYS.override(ov.subject)).exec());
        const kv = got.kvs[0];
        const before = kv ? ({ subject: ov.subject, ...(JSON.parse(kv.value.toString()) as Omit<Override, 'subject'>) }) : undefined;
        const change = overrideChange(before, ov, now());
        const ops: Parameters<Txn['then']> = [];
        if (change) {
          ops.push(change.after ? client.put(KEYS.override(ov.subject)).value(JSON.stringify({ mode: change.after.mode, reason: change.after.reason, actor: change.after.actor, time: change.after.time })) : client.delete().key(KEYS.override(ov.subject)));
          ops.push(eventPut(uniqueKey(), 0, change.event));
        }
        if (o.audit) ops.push(auditPut(o.audit));
        if (ops.length === 0) return { changed: false };
        const res = await etcdCall('write', () => client.if(KEYS.override(ov.subject), 'Mod', '==', kv ? Number(kv.mod_revision) : 0).then(...ops).commit());
        if (res.succeeded) {
          await readModel?.waitFor(Number(res.header.revision), READ_BACK_MS);
          return { changed: change !== undefined };
        }
      }
      throw conflict(`override of ${ov.subject}`);
    },
  };
}
