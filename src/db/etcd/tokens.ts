// API tokens in the replicated store: made, listed and revoked in etcd (only
// each token's SHA-256 is kept), read by every replica from its read model as
// in the embedded mode. Ids come from a counter key, taken in the same
// transaction as the token.
import type { Etcd3 } from 'etcd3';
import type { CreatedToken, Role, TokenInfo } from '../tokens.js';
import { hashToken, newToken, tokenName, type Binding } from '../tokens.js';
import { etcdCall } from './fault.js';
import { KEYS } from './keys.js';

type TokenDoc = { id: number; name: string; role: Role; hash: string; agent: string | null; region: string | null; node: string | null; createdAt: number; revokedAt: number | null };

const infoOf = (d: TokenDoc): TokenInfo => ({
  id: d.id,
  name: d.name,
  role: d.role,
  ...(d.agent ? { agent: d.agent } : {}),
  ...(d.region ? { region: d.region } : {}),
  ...(d.node ? { node: d.node } : {}),
  createdAt: d.createdAt,
  lastUsedAt: null,
  revokedAt: d.revokedAt,
});

export function createEtcdTokens(deps: { client: Etcd3; now?: () => number }) {
  const { client } = deps;
  const now = deps.now ?? Date.now;

  async function read(id: number): Promise<{ doc: TokenDoc; mod: number } | undefined> {
    const res = await etcdCall('read', () => client.get(KEYS.token(id)).exec());
    const kv = res.kvs[0];
    return kv ? { doc: JSON.parse(kv.value.toString()) as TokenDoc, mod: Number(kv.mod_revision) } : undefined;
  }

  return {
    async create(input: Binding & { role: Role; name?: string }): Promise<CreatedToken> {
      const { binding, trimmed, token } = newToken(input.role, input.name, input);
      for (;;) {
        const seq = (await etcdCall('read', () => client.get(KEYS.tokenSeq).exec())).kvs[0];
        const id = (seq ? Number(seq.value.toString()) : 0) + 1;
        const name = tokenName(input.role, trimmed, binding, id);
        const doc: TokenDoc = { id, name, role: input.role, hash: hashToken(token), agent: binding.agent ?? null, region: binding.region ?? null, node: binding.node ?? null, createdAt: now(), revokedAt: null };
        const res = await etcdCall('write', () =>
          client
            .if(KEYS.tokenSeq, 'Mod', '==', seq ? Number(seq.mod_revision) : 0)
            .then(client.put(KEYS.tokenSeq).value(String(id)), client.put(KEYS.token(id)).value(JSON.stringify(doc)))
            .commit(),
        );
        if (res.succeeded) return { id, name, role: input.role, token, ...binding };
      }
    },

    async list(): Promise<TokenInfo[]> {
      const res = await etcdCall('read', () => client.getAll().prefix(KEYS.tokenPrefix).strings());
      return Object.entries(res)
        .filter(([k]) => k !== KEYS.tokenSeq)
        .map(([, v]) => infoOf(JSON.parse(v) as TokenDoc))
        .sort((a, b) => a.id - b.id);
    },

    /** True when the token was live and is now revoked. */
    async revoke(id: number): Promise<boolean> {
      for (;;) {
        const t = await read(id);
        if (!t || t.doc.revokedAt !== null) return false;
        const res = await etcdCall('write', () => client.if(KEYS.token(id), 'Mod', '==', t.mod).then(client.put(KEYS.token(id)).value(JSON.stringify({ ...t.doc, revokedAt: now() }))).commit());
        if (res.succeeded) return true;
      }
    },
  };
}
