// DNSSEC keys in the replicated store. Each key is one etcd key whose private
// key is sealed under the key-encryption key the TSIG secrets use
// (ARUS_TSIG_KEY, AES-256-GCM, db/tsig-keys.ts), bound to the key's zone and
// id: etcd, its backups and every replica's read model hold ciphertext only.
// A private key is opened in the memory of the process that signs (control)
// or rolls (the CLI), never written opened.
//
// DnssecKeyStore is synchronous (SQLite); etcd is not. So writes are staged
// on a synchronous view of the keys as read, then sent as one transaction
// conditional on `dnssec/version` not having moved since that read: two
// writers (the leader's rollover step, an operator's `arus dnssec roll`) never
// act on the same keys twice, and whoever lost reads again and decides anew.
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../../log.js';
import { DnssecKeyError, initZone, keyId, zoneKey, type DnssecKeyDoc, type DnssecKeyInfo, type DnssecKeyStore } from '../dnssec-keys.js';
import { StorageError } from '../faults.js';
import { openSecret, sealSecret, TSIG_KEY_SOURCE, TsigKeyError, type TsigKeyDoc } from '../tsig-keys.js';
import type { Election } from './election.js';
import { etcdCall, etcdFault } from './fault.js';
import { KEYS } from './keys.js';

/** A key as etcd (and a replica's read model) holds it: everything but the private key, which is sealed. */
export type SealedDnssecKey = DnssecKeyInfo & { sealed: string };

/** What a sealed key is bound to (GCM's additional data): a ciphertext moved to another key's document does not open. */
const boundTo = (k: { zone: string; id: string }) => `dnssec:${k.zone}/${k.id}`;

export function sealKey(kek: Buffer, doc: DnssecKeyDoc): SealedDnssecKey {
  const { privateKey, ...info } = doc;
  return { ...info, sealed: sealSecret(kek, boundTo(doc), Buffer.from(privateKey)) };
}

export function openKey(kek: Buffer | undefined, k: SealedDnssecKey): DnssecKeyDoc {
  if (!kek) throw new DnssecKeyError(`the zone's DNSSEC keys are sealed in etcd: set ${TSIG_KEY_SOURCE} to the key they were sealed with`);
  const { sealed, ...info } = k;
  try {
    return { ...info, privateKey: openSecret(kek, boundTo(k), sealed).toString() };
  } catch (err) {
    if (!(err instanceof TsigKeyError)) throw err;
    throw new DnssecKeyError(`cannot open DNSSEC key ${k.id} of ${k.zone}: ${TSIG_KEY_SOURCE} is not the key it was sealed with (use the replicas' and arus dnssec's own)`);
  }
}

const info = ({ sealed: _s, ...rest }: SealedDnssecKey): DnssecKeyInfo => rest;
const byAge = (a: SealedDnssecKey, b: SealedDnssecKey) => a.createdAt - b.createdAt || a.id.localeCompare(b.id);

/**
 * A DnssecKeyStore over `docs` (the keys as read), whose writes land in
 * `staged()` (sealed under `kek`) for the caller to commit. `live` opens
 * private keys, so it needs `kek`; `list` does not.
 */
export function stagedKeys(kek: Buffer | undefined, docs: readonly SealedDnssecKey[]) {
  const staged = new Map<string, SealedDnssecKey>();
  const all = () => {
    const m = new Map(docs.map((d) => [d.id, d]));
    for (const [id, d] of staged) m.set(id, d);
    return [...m.values()].sort(byAge);
  };
  const of = (zone?: string) => (zone === undefined ? all() : all().filter((d) => d.zone === zoneKey(zone)));
  const sealed = (k: Omit<DnssecKeyDoc, 'id'>, id: string) => {
    if (!kek) throw new DnssecKeyError(`a new DNSSEC key is sealed under the key-encryption key: set ${TSIG_KEY_SOURCE}`);
    return sealKey(kek, { ...k, zone: zoneKey(k.zone), id });
  };
  const idFor = (k: { role: string; tag: number }) => keyId(k, new Set(all().map((d) => d.id)));
  const store: DnssecKeyStore = {
    init(keys) {
      initZone(keys, of);
      return keys.map((k) => store.add(k));
    },
    list: (zone) => of(zone).map(info),
    live: (zone) => of(zone).filter((d) => d.state !== 'removed').map((d) => openKey(kek, d)),
    add(key) {
      const doc = sealed(key, idFor(key));
      staged.set(doc.id, doc);
      return info(doc);
    },
    update(id, change) {
      const doc = all().find((d) => d.id === id);
      if (!doc) throw new DnssecKeyError(`no DNSSEC key ${id}`);
      staged.set(id, { ...doc, ...change });
    },
  };
  return { store, staged: () => [...staged.values()] };
}

/** Tries before a write that keeps meeting another is given up. */
const ATTEMPTS = 8;

export function createEtcdDnssecKeys(deps: { client: Etcd3 }) {
  const { client } = deps;

  /** Every key, and the revision of `dnssec/version` beside them (0: never written): one range read, so both are of one revision. */
  async function read(): Promise<{ docs: SealedDnssecKey[]; version: number }> {
    const res = await etcdCall('read', () => client.getAll().prefix(KEYS.dnssecPrefix).exec());
    const docs = res.kvs.filter((kv) => kv.key.toString().startsWith(KEYS.dnssecKeyPrefix)).map((kv) => JSON.parse(kv.value.toString()) as SealedDnssecKey);
    const version = res.kvs.find((kv) => kv.key.toString() === KEYS.dnssecVersion);
    return { docs: docs.sort(byAge), version: Number(version?.mod_revision ?? 0) };
  }

  /**
   * Writes `docs` if `dnssec/version` is still at `version` (and, with
   * `term`, while that term leads: a leader paused past its lease is
   * refused). 'moved': someone wrote first.
   */
  async function commit(docs: readonly SealedDnssecKey[], o: { version: number; term?: string }): Promise<{ outcome: 'written' | 'moved' | 'fenced'; revision: number }> {
    let txn = client.if(KEYS.dnssecVersion, 'Mod', '==', o.version);
    if (o.term !== undefined) txn = txn.and(KEYS.leader, 'Create', '==', o.term);
    const ops = docs.map((d) => client.put(KEYS.dnssecKey(d.id)).value(JSON.stringify(d)));
    // Its revision is the lock; the value only says when.
    ops.push(client.put(KEYS.dnssecVersion).value(String(Date.now())));
    const res = await etcdCall('write', () => txn.then(...ops).commit());
    const revision = Number(res.header.revision);
    if (res.succeeded) return { outcome: 'written', revision };
    if (o.term === undefined) return { outcome: 'moved', revision };
    const leader = await etcdCall('read', () => client.get(KEYS.leader).exec());
    return { outcome: String(leader.kvs[0]?.create_revision) === o.term ? 'moved' : 'fenced', revision };
  }

  /** Refuses a key-encryption key that does not open the keys already sealed (DNSSEC's, else TSIG's): the replicas could not open what it seals. */
  async function checkKek(kek: Buffer, docs: readonly SealedDnssecKey[]): Promise<void> {
    const sample = docs.find((d) => d.state !== 'removed') ?? docs[0];
    if (sample) return void openKey(kek, sample);
    const tsig = await etcdCall('read', () => client.getAll().prefix(KEYS.tsigKeyPrefix).limit(1).exec());
    const t = tsig.kvs[0] && (JSON.parse(tsig.kvs[0].value.toString()) as TsigKeyDoc);
    if (!t) return;
    try {
      openSecret(kek, t.name, t.secret);
    } catch (err) {
      if (!(err instanceof TsigKeyError)) throw err;
      throw new DnssecKeyError(`${TSIG_KEY_SOURCE} is not the key the TSIG keys in etcd are sealed with (it does not open ${t.name}): use the replicas' own`);
    }
  }

  return {
    read,
    commit,
    /**
     * Runs `fn` on the keys as etcd holds them now and writes what it staged
     * in one transaction; run again on a fresh read when another writer came
     * first. `kek` seals new keys (and is checked against the sealed ones);
     * without it `fn` may only read.
     */
    async change<T>(kek: Buffer | undefined, fn: (keys: DnssecKeyStore) => T): Promise<T> {
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        const { docs, version } = await read();
        if (kek) await checkKek(kek, docs);
        const view = stagedKeys(kek, docs);
        const out = fn(view.store);
        if (view.staged().length === 0 || (await commit(view.staged(), { version })).outcome === 'written') return out;
        await new Promise((r) => setTimeout(r, 10 + Math.random() * 40 * (attempt + 1)));
      }
      throw new StorageError('busy', 'CONFLICT', `the DNSSEC keys kept changing under this write (${ATTEMPTS} attempts): nothing was written, retry shortly`, 1);
    },
  };
}

/**
 * Control's DnssecKeyStore on a replica: reads from the replica's read model
 * (private keys opened in memory, once each), writes to etcd only while this
 * replica leads, fenced by its term. The writes of one synchronous turn (a
 * rollover step: the successor active, the old key retired) go as one
 * transaction; until the read model holds it, further writes are not sent, so
 * a step the read model does not show yet is not taken twice (were one sent,
 * etcd would refuse it: the version moved).
 */
export function createReplicaDnssecKeys(deps: { client: Etcd3; election: Pick<Election, 'isLeader' | 'term'>; readModel: { dnssecKeys(): readonly SealedDnssecKey[]; applied(): number; revisionOf(key: string): number | undefined }; kek?: Buffer; log: Logger }) {
  const { election, readModel, kek, log } = deps;
  const etcd = createEtcdDnssecKeys({ client: deps.client });
  const opened = new Map<string, DnssecKeyDoc>();
  let batch: { view: ReturnType<typeof stagedKeys>; version: number; term: string } | undefined;
  let inFlight = false;
  let awaited = 0;

  const openOnce = (d: SealedDnssecKey): DnssecKeyDoc => {
    const cached = opened.get(d.id);
    if (cached && cached.dnskey === d.dnskey) return { ...cached, ...info(d) };
    const doc = openKey(kek, d);
    opened.set(d.id, doc);
    return doc;
  };

  /** The view this turn's writes are staged on, or undefined when this replica may not write now. */
  function writer(): ReturnType<typeof stagedKeys> | undefined {
    if (batch) return batch.view;
    const term = election.term();
    if (!election.isLeader() || term === undefined || inFlight || readModel.applied() < awaited) return undefined;
    batch = { view: stagedKeys(kek, readModel.dnssecKeys()), version: readModel.revisionOf(KEYS.dnssecVersion) ?? 0, term };
    queueMicrotask(flush);
    return batch.view;
  }

  function flush(): void {
    const b = batch;
    batch = undefined;
    if (!b || b.view.staged().length === 0) return;
    inFlight = true;
    etcd
      .commit(b.view.staged(), { version: b.version, term: b.term })
      .then(
        ({ outcome, revision }) => {
          if (outcome === 'written') awaited = revision;
          else log.info({ outcome, keys: b.view.staged().map((d) => d.id) }, 'a DNSSEC key write as leader was refused; the next tick decides again');
        },
        (err: unknown) => {
          if (!etcdFault(err, 'write')) log.error({ err }, 'a DNSSEC key write as leader failed');
          else log.warn({ err: (err as Error).message }, 'a DNSSEC key write as leader did not reach etcd; the next tick tries again');
        },
      )
      .finally(() => (inFlight = false));
  }

  const store: DnssecKeyStore = {
    init: () => {
      throw new DnssecKeyError('keys are made with arus dnssec init --etcd, not by control');
    },
    list: (zone) => stagedKeys(undefined, readModel.dnssecKeys()).store.list(zone),
    live: (zone) => readModel.dnssecKeys().filter((d) => d.zone === zoneKey(zone) && d.state !== 'removed').map(openOnce),
    add(key) {
      const w = writer();
      // A follower (or a leader whose last write is not yet in its read model) takes no step: what it would have made is not stored.
      if (w) return w.store.add(key);
      const { privateKey: _p, ...rest } = key;
      return { ...rest, zone: zoneKey(key.zone), id: `${key.role}-${key.tag}` };
    },
    update(id, change) {
      writer()?.store.update(id, change);
    },
  };
  return {
    ...store,
    /** The key whose DNSKEY RDATA is `dnskey` (base64), opened: the ZSK a published state names. */
    byDnskey(dnskey: string): DnssecKeyDoc | undefined {
      const d = readModel.dnssecKeys().find((k) => k.dnskey === dnskey);
      return d && openOnce(d);
    },
  };
}
