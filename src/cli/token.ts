// `arus token`: create, list and revoke API tokens (stored hashed), and the
// text each prints.
import type { Db } from '../db/database.js';
import type { createEtcdTokens } from '../db/etcd/tokens.js';
import { createTokenStore, isRole, ROLES, type Binding, type CreatedToken, type Role, type TokenInfo } from '../db/tokens.js';
import { etcdHelp, etcdOpt } from './etcd-options.js';
import { openEtcdStore } from './etcd-store.js';
import { tlsOpt } from './tls-options.js';
import type { Command } from './command.js';
import { opt } from './options.js';
import { openStores } from './stores.js';
import { UsageError } from './usage-error.js';

export const tokenCommand: Command = {
  usage: `arus token create --role admin|operator|viewer [--name NAME] [--db FILE]
       arus token create --role probe --agent ID --region ID [--name NAME] [--db FILE]
       arus token create --role balancer --region ID [--name NAME] [--db FILE]
       arus token create --role dns --node ID [--name NAME] [--db FILE]
       arus token list [--db FILE]
       arus token revoke ID [--db FILE]

  The bootstrap admin token comes from ARUS_ADMIN_TOKEN; these are the others.
  admin may do everything; operator reads and drains; viewer reads. A machine's
  token is bound to the one identity it speaks for: a probe agent (and its
  region), a balancer's region, a DNS node. Control refuses (403, audited) a
  request that speaks for another. With --etcd the tokens are the replicated
  store's (every replica reads them).

${etcdHelp}`,
  options: { ...opt.db, role: { type: 'string' }, name: { type: 'string' }, agent: { type: 'string' }, region: { type: 'string' }, node: { type: 'string' }, ...etcdOpt, ...tlsOpt.insecure },
  async run({ values, positionals }, log) {
    const [verb, id] = positionals;
    const str = (k: string) => values[k] as string | undefined;
    const etcd = await openEtcdStore(values, log);
    if (etcd) return void console.log(await etcdToken(etcd.tokens, verb, id, { role: str('role'), name: str('name'), agent: str('agent'), region: str('region'), node: str('node') }).finally(() => etcd.close()));
    const { db } = await openStores(String(values.db));
    if (verb === 'create') console.log(tokenCreate(db, { role: str('role'), name: str('name'), agent: str('agent'), region: str('region'), node: str('node') }));
    else if (verb === 'list') console.log(tokenList(db));
    else if (verb === 'revoke' && id) console.log(tokenRevoke(db, id));
    else throw new UsageError('token needs create, list or revoke ID');
  },
};

/** A mistake on the command line (unknown role, bad id, no such token). */
export class TokenError extends Error {}

const when = (t: number | null) => (t === null ? '-' : new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ''));

/** `arus token create`: the text to print, with the token shown this once. */
export function tokenCreate(db: Db, input: TokenInput): string {
  return createdText(checkedRole(input), (i) => createTokenStore(db).create(i));
}

type TokenInput = Binding & { role: string | undefined; name?: string };
type Checked = Binding & { role: Role; name?: string };

function checkedRole(input: TokenInput): Checked {
  if (!isRole(input.role)) throw new TokenError(`--role must be one of ${ROLES.join(', ')}${input.role === undefined ? '' : `, not "${input.role}"`}`);
  return { role: input.role, name: input.name, agent: input.agent, region: input.region, node: input.node };
}

function createdText(input: Checked, create: (i: Checked) => CreatedToken): string {
  let created;
  try {
    created = create(input);
  } catch (err) {
    throw new TokenError((err as Error).message);
  }
  return formatCreated(created);
}

function formatCreated(created: CreatedToken): string {
  return [
    `created token ${created.id} "${created.name}" with role ${created.role}${bindingText(created) ? `, bound to ${bindingText(created)}` : ''}:`,
    '',
    `  ${created.token}`,
    '',
    'Copy it now: it will not be shown again (only its SHA-256 hash is stored).',
    'Send it as the header  Authorization: Bearer <token>',
  ].join('\n');
}

/** `arus token list`: a table; never tokens or hashes. */
export function tokenList(db: Db): string {
  return formatList(createTokenStore(db).list());
}

function formatList(tokens: TokenInfo[]): string {
  if (tokens.length === 0) return 'no tokens (create one with: arus token create --role viewer --name NAME)';
  const head = ['id', 'name', 'role', 'bound to', 'created (UTC)', 'last used (UTC)', 'revoked (UTC)'];
  const rows = tokens.map((t) => [String(t.id), t.name, t.role, bindingText(t) || '-', when(t.createdAt), when(t.lastUsedAt), when(t.revokedAt)]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

/** `arus token revoke ID`: revoking a revoked token is not an error; an unknown id is. */
export function tokenRevoke(db: Db, id: string | number): string {
  const n = tokenId(id);
  const store = createTokenStore(db);
  const token = store.list().find((t) => t.id === n);
  if (!token) throw new TokenError(`no token ${n} (see arus token list)`);
  if (!store.revoke(n)) return `token ${n} "${token.name}" was already revoked`;
  return `revoked token ${n} "${token.name}" (${token.role}): it is refused from now on`;
}

function tokenId(id: string | number): number {
  const n = typeof id === 'number' ? id : /^\d{1,15}$/.test(id.trim()) ? Number(id.trim()) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new TokenError(`"${id}" is not a token id (see arus token list)`);
  return n;
}

/** The same commands against the replicated store (`--etcd`). */
async function etcdToken(tokens: ReturnType<typeof createEtcdTokens>, verb: string | undefined, id: string | undefined, input: TokenInput): Promise<string> {
  if (verb === 'create') {
    const checked = checkedRole(input);
    try {
      return formatCreated(await tokens.create(checked));
    } catch (err) {
      throw new TokenError((err as Error).message);
    }
  }
  if (verb === 'list') return formatList(await tokens.list());
  if (verb === 'revoke' && id) {
    const n = tokenId(id);
    const token = (await tokens.list()).find((t) => t.id === n);
    if (!token) throw new TokenError(`no token ${n} (see arus token list)`);
    if (!(await tokens.revoke(n))) return `token ${n} "${token.name}" was already revoked`;
    return `revoked token ${n} "${token.name}" (${token.role}): it is refused from now on`;
  }
  throw new UsageError('token needs create, list or revoke ID');
}

/** `agent jkt-1, region jkt`: what a token speaks for. */
function bindingText(b: Binding): string {
  return (['agent', 'region', 'node'] as const)
    .filter((k) => b[k] !== undefined)
    .map((k) => `${k} ${b[k]}`)
    .join(', ');
}
