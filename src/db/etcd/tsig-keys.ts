// TSIG keys in the replicated store: made, listed and revoked in etcd, each
// key's secret sealed under ARUS_TSIG_KEY exactly as db/tsig-keys.ts seals it
// (never in plain text, in etcd or in a replica's copy), read by every
// replica from its read model (read-model-apply.ts mirrors them into its
// tsig_keys table). When a key was last used is each replica's own
// bookkeeping, in its read model: not here.
import type { Etcd3 } from 'etcd3';
import { canonicalName, exists, keyName, newTsigKey, openSecret, TsigKeyError, type AllowPattern, type TsigKey, type TsigKeyDoc, type TsigKeyInfo } from '../tsig-keys.js';
import { etcdCall } from './fault.js';
import { KEYS } from './keys.js';

const infoOf = (d: TsigKeyDoc): TsigKeyInfo => ({ name: d.name, algorithm: d.algorithm, allow: d.allow, createdAt: d.createdAt, lastUsedAt: null, revokedAt: d.revokedAt });

export function createEtcdTsigKeys(deps: { client: Etcd3; now?: () => number }) {
  const { client } = deps;
  const now = deps.now ?? Date.now;

  async function all(): Promise<TsigKeyDoc[]> {
    const res = await etcdCall('read', () => client.getAll().prefix(KEYS.tsigKeyPrefix).exec());
    return res.kvs.map((kv) => JSON.parse(kv.value.toString()) as TsigKeyDoc);
  }

  return {
    /**
     * A new key, sealed under `kek`; its secret returned this once. Refused when the name is taken,
     * or when `kek` does not open the keys already there: the replicas could not open this one either.
     */
    async create(kek: Buffer, input: { name: string; allow: AllowPattern[] }): Promise<TsigKey> {
      const name = keyName(input.name);
      const { doc, key } = newTsigKey(kek, input, now());
      const others = await all();
      if (others.some((o) => o.name === name)) throw exists(name);
      const sample = others.find((o) => o.revokedAt === null) ?? others[0];
      if (sample) {
        try {
          openSecret(kek, sample.name, sample.secret);
        } catch (err) {
          if (!(err instanceof TsigKeyError)) throw err;
          throw new TsigKeyError(`ARUS_TSIG_KEY is not the key the TSIG keys in etcd are sealed with (it does not open ${sample.name}): use the replicas' ARUS_TSIG_KEY`);
        }
      }
      const res = await etcdCall('write', () => client.if(KEYS.tsigKey(name), 'Create', '==', 0).then(client.put(KEYS.tsigKey(name)).value(JSON.stringify(doc))).commit());
      if (!res.succeeded) throw exists(name);
      return key;
    },

    /** Every key, by name; never a secret, sealed or not. */
    async list(): Promise<TsigKeyInfo[]> {
      return (await all()).map(infoOf).sort((a, b) => a.name.localeCompare(b.name));
    },

    /** True when the key was live and is now revoked. */
    async revoke(text: string): Promise<boolean> {
      const name = canonicalName(text);
      for (;;) {
        const got = await etcdCall('read', () => client.get(KEYS.tsigKey(name)).exec());
        const kv = got.kvs[0];
        if (!kv) return false;
        const doc = JSON.parse(kv.value.toString()) as TsigKeyDoc;
        if (doc.revokedAt !== null) return false;
        const res = await etcdCall('write', () => client.if(KEYS.tsigKey(name), 'Mod', '==', Number(kv.mod_revision)).then(client.put(KEYS.tsigKey(name)).value(JSON.stringify({ ...doc, revokedAt: now() }))).commit());
        if (res.succeeded) return true;
      }
    },
  };
}
