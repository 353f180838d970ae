// Credentials for black-box tests, made the way an operator makes them: a
// token bound to one identity with `arus token create`, a lab CA with server
// and client certificates with `arus certs init`. Plus what a test needs
// around them: a certificate issued later by the same CA (rotation, expiry,
// a wrong name), and a fetch that presents a client certificate.
import 'reflect-metadata'; // @peculiar/x509 needs it before it loads
import { webcrypto } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { Agent, fetch as undiciFetch } from 'undici';
import { openDatabase } from '../../src/db/database.js';
import { createTokenStore, type Binding, type Role } from '../../src/db/tokens.js';
import { issue, type Authority, type LeafOptions } from '../../src/tls/certs.js';
import { arus } from './arus.js';

export type TokenSpec = Binding & { role: Role; name?: string };

const flags = (s: TokenSpec) => [
  '--role',
  s.role,
  ...(s.name ? ['--name', s.name] : []),
  ...(s.agent ? ['--agent', s.agent] : []),
  ...(s.region ? ['--region', s.region] : []),
  ...(s.node ? ['--node', s.node] : []),
];

/** `arus token create … --db FILE`: the token it prints; throws with its stderr when it refuses. */
export function createToken(dbFile: string, spec: TokenSpec): string {
  const r = arus(['token', 'create', ...flags(spec), '--db', dbFile]);
  const token = /arus_\S+/.exec(r.stdout)?.[0];
  if (r.code !== 0 || !token) throw new Error(`arus token create ${flags(spec).join(' ')}: exited ${r.code}\n${r.stdout}${r.stderr}`);
  return token;
}

/**
 * Many bound tokens at once, written straight into the database file through
 * the same token store `arus token create` uses (a process each would take
 * minutes for hundreds). Call it before control opens the file.
 */
export function createTokens(dbFile: string, specs: TokenSpec[]): string[] {
  const db = openDatabase(dbFile);
  try {
    const store = createTokenStore(db);
    return specs.map((s) => store.create(s).token);
  } finally {
    db.$client.close();
  }
}

export type Pair = { cert: string; key: string };

export type Certs = {
  dir: string;
  /** ca.crt: what clients trust, and control's client CA under mutual TLS. */
  ca: string;
  server: Pair;
  /** The files of a client identity given to `certsInit` (`probe/jkt/jkt-1` → probe-jkt-jkt-1.crt/.key). */
  client(identity: string): Pair;
  /** Control's listener flags: its certificate, and with `mutual` its client CA. */
  serverArgs(o?: { mutual?: boolean }): string[];
  /** A role's flags for its link to control: --ca, and the identity's client certificate when given. */
  clientArgs(identity?: string): string[];
};

/** `arus certs init --out DIR --names … --clients …`; throws with its output when it fails. */
export function certsInit(dir: string, o: { names?: string[]; clients?: string[]; days?: number } = {}): Certs {
  const names = o.names ?? ['127.0.0.1', 'localhost'];
  const args = ['certs', 'init', '--out', dir, '--names', names.join(','), ...(o.clients?.length ? ['--clients', o.clients.join(',')] : []), ...(o.days ? ['--days', String(o.days)] : [])];
  const r = arus(args);
  if (r.code !== 0) throw new Error(`arus ${args.join(' ')}: exited ${r.code}\n${r.stdout}${r.stderr}`);
  const pair = (name: string): Pair => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) });
  const ca = join(dir, 'ca.crt');
  const client = (identity: string) => {
    if (!o.clients?.includes(identity)) throw new Error(`no client certificate for ${identity}: certsInit made ${o.clients?.join(', ') ?? 'none'}`);
    return pair(identity.replaceAll('/', '-'));
  };
  return {
    dir,
    ca,
    server: pair('server'),
    client,
    serverArgs: (s = {}) => ['--tls-cert', join(dir, 'server.crt'), '--tls-key', join(dir, 'server.key'), ...(s.mutual ? ['--tls-client-ca', ca] : [])],
    clientArgs: (identity) => ['--ca', ca, ...(identity ? ['--client-cert', client(identity).cert, '--client-key', client(identity).key] : [])],
  };
}

/** The CA `arus certs init` wrote to `dir`, loaded so that a test can issue more certificates from it. */
export async function loadAuthority(dir: string): Promise<Authority> {
  const cert = readFileSync(join(dir, 'ca.crt'), 'utf8');
  const key = readFileSync(join(dir, 'ca.key'), 'utf8');
  const der = Buffer.from(key.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const alg = { name: 'ECDSA', namedCurve: 'P-256' };
  const certificate = new x509.X509Certificate(cert);
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, alg, true, ['sign']);
  const publicKey = await certificate.publicKey.export(alg, ['verify'], webcrypto as unknown as Crypto);
  return { cert, key, certificate, keys: { privateKey, publicKey } };
}

/** Issues a certificate from `ca` and writes it to `pair` (the certificate first, then its key, as a renewal would). */
export async function writeIssued(ca: Authority, pair: Pair, o: LeafOptions): Promise<void> {
  const pem = await issue(ca, o);
  writeFileSync(pair.cert, pem.cert);
  writeFileSync(pair.key, pem.key, { mode: 0o600 });
}

export type TlsFetch = {
  /** undici's fetch through an agent that trusts `ca` and presents the client certificate (if any). */
  fetch(url: string, init?: { method?: string; headers?: Record<string, string>; body?: string }): Promise<Response>;
  close(): Promise<void>;
};

/** A fetch for the test's own calls to an HTTPS control: trusts `ca`; presents `client` when given (mutual TLS). */
export function tlsFetch(ca: string, client?: Pair): TlsFetch {
  const agent = new Agent({
    connect: { ca: readFileSync(ca), ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}) },
  });
  return {
    fetch: async (url, init) => (await undiciFetch(url, { ...init, dispatcher: agent })) as unknown as Response,
    close: () => agent.close(),
  };
}
