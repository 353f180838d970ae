// Where the replicated control plane keeps its state in etcd. Everything lives
// under one prefix, so one watch feeds a replica's read model and one range
// read rebuilds it.
//
//   config/version          counter every configuration write moves (the lock of optimistic writes)
//   config/zone             the zone's settings document (JSON)
//   config/regions/<id>     one region's document
//   overrides/<subject>     an admin drain or force-up
//   tokens/seq              the last token id handed out
//   tokens/<id>             one API token: its SHA-256, role and binding, never the token
//   tsig/keys/<name>        one TSIG key: its secret sealed under ARUS_TSIG_KEY (AES-256-GCM), never in plain text
//   tsig/seen/<mac>         a MAC an update was signed with, on a lease past the fudge window (the replay guard)
//   dnssec/keys/<id>        one DNSSEC key (KSK or ZSK): its private key sealed under ARUS_TSIG_KEY, never in plain text
//   dnssec/version          moved by every DNSSEC key write (the lock of their optimistic writes)
//   events/<term>-<seq>     one row of the history (written once: the key is chosen before the write)
//   audit/<time>-<random>   one write through the API: who, what, before and after
//   state                   the leader's published health, latency and capacity
//   leader                  the leader's id, on its lease
//   replicas/<id>           each replica's URL and applied revision, on its lease
//   gaps/no-quorum          the last stretch without quorum recorded in the history (so that it is recorded once)

export const PREFIX = '/arus/';

export const KEYS = {
  configVersion: `${PREFIX}config/version`,
  zone: `${PREFIX}config/zone`,
  regionPrefix: `${PREFIX}config/regions/`,
  region: (id: string) => `${PREFIX}config/regions/${id}`,
  overridePrefix: `${PREFIX}overrides/`,
  override: (subject: string) => `${PREFIX}overrides/${subject}`,
  tokenSeq: `${PREFIX}tokens/seq`,
  tokenPrefix: `${PREFIX}tokens/`,
  token: (id: number) => `${PREFIX}tokens/${String(id).padStart(10, '0')}`,
  tsigKeyPrefix: `${PREFIX}tsig/keys/`,
  tsigKey: (name: string) => `${PREFIX}tsig/keys/${name}`,
  tsigSeenPrefix: `${PREFIX}tsig/seen/`,
  tsigSeen: (mac: Buffer) => `${PREFIX}tsig/seen/${mac.toString('hex')}`,
  dnssecPrefix: `${PREFIX}dnssec/`,
  dnssecKeyPrefix: `${PREFIX}dnssec/keys/`,
  dnssecKey: (id: string) => `${PREFIX}dnssec/keys/${id}`,
  dnssecVersion: `${PREFIX}dnssec/version`,
  eventPrefix: `${PREFIX}events/`,
  event: (term: string, seq: number) => `${PREFIX}events/${term}-${String(seq).padStart(10, '0')}`,
  auditPrefix: `${PREFIX}audit/`,
  audit: (id: string) => `${PREFIX}audit/${id}`,
  state: `${PREFIX}state`,
  leader: `${PREFIX}leader`,
  replicaPrefix: `${PREFIX}replicas/`,
  replica: (id: string) => `${PREFIX}replicas/${id}`,
  gap: `${PREFIX}gaps/no-quorum`,
} as const;

/** What a key is, for the read model: its kind and, where it names one, the thing's id. */
export type KeyKind =
  | { kind: 'config-version' }
  | { kind: 'zone' }
  | { kind: 'region'; id: string }
  | { kind: 'override'; subject: string }
  | { kind: 'token-seq' }
  | { kind: 'token'; id: number }
  | { kind: 'tsig-key'; name: string }
  | { kind: 'tsig-seen' }
  | { kind: 'dnssec-key'; id: string }
  | { kind: 'dnssec-version' }
  | { kind: 'event' }
  | { kind: 'audit' }
  | { kind: 'state' }
  | { kind: 'leader' }
  | { kind: 'replica'; id: string }
  | { kind: 'other' };

export function kindOf(key: string): KeyKind {
  if (!key.startsWith(PREFIX)) return { kind: 'other' };
  const rest = key.slice(PREFIX.length);
  if (rest === 'config/version') return { kind: 'config-version' };
  if (rest === 'config/zone') return { kind: 'zone' };
  if (rest.startsWith('config/regions/')) return { kind: 'region', id: rest.slice('config/regions/'.length) };
  if (rest.startsWith('overrides/')) return { kind: 'override', subject: rest.slice('overrides/'.length) };
  if (rest === 'tokens/seq') return { kind: 'token-seq' };
  if (rest.startsWith('tokens/')) return { kind: 'token', id: Number(rest.slice('tokens/'.length)) };
  if (rest.startsWith('tsig/keys/')) return { kind: 'tsig-key', name: rest.slice('tsig/keys/'.length) };
  if (rest.startsWith('tsig/seen/')) return { kind: 'tsig-seen' };
  if (rest.startsWith('dnssec/keys/')) return { kind: 'dnssec-key', id: rest.slice('dnssec/keys/'.length) };
  if (rest === 'dnssec/version') return { kind: 'dnssec-version' };
  if (rest.startsWith('events/')) return { kind: 'event' };
  if (rest.startsWith('audit/')) return { kind: 'audit' };
  if (rest === 'state') return { kind: 'state' };
  if (rest === 'leader') return { kind: 'leader' };
  if (rest.startsWith('replicas/')) return { kind: 'replica', id: rest.slice('replicas/'.length) };
  return { kind: 'other' };
}
