import { createHash, timingSafeEqual } from 'node:crypto';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';
import { formatIPv4, isMappedIPv4, parseAddress } from '../geo/prefix.js';
import { checkBinding, ROLES, type Binding, type TokenStore } from '../db/tokens.js';
import { problem, type Env, type Principal, type Role } from './env.js';

/** A token fixed at start (the bootstrap admin token, each in-process probe agent's), with the binding its role needs. */
export type StaticToken = Binding & { token: string; role: Role; name: string };

/** A client certificate's identity: a principal, or why it names none (see src/tls/identity.ts). */
export type PeerIdentity = { principal: Principal } | { error: string };

export type FailureOptions = {
  /** The sliding window failures are counted in (default 60 s). */
  windowMs?: number;
  /** Failures within the window after which an address gets 429 until the oldest leaves it (default 10). */
  max?: number;
  /** Addresses remembered at once; the one that failed longest ago is forgotten first (default 10,000). */
  maxAddresses?: number;
  /** The delay before the second failure's 401, doubling with each further one (default 100 ms)... */
  delayMs?: number;
  /** ...up to this (default 1 s). */
  maxDelayMs?: number;
};

export type AuthOptions = {
  /** Tokens made with `arus token create`. */
  tokens?: Pick<TokenStore, 'verify'>;
  /** Tokens fixed at start: the bootstrap admin token (ARUS_ADMIN_TOKEN), in-process probes. */
  staticTokens?: readonly StaticToken[];
  /** `/metrics` needs no token when `metrics` is true; `/healthz` needs none unless `health` is false. */
  open?: { metrics?: boolean; health?: boolean };
  now?: () => number;
  failures?: FailureOptions;
  /** The client's address, the key failures are counted by (default: the socket's peer, `unknown` without one). */
  address?: (c: Context) => string;
  /** How the delay before a 401 is waited (tests record it instead). */
  sleep?: (ms: number) => Promise<void>;
  /**
   * The verified client certificate's identity (mutual TLS), if the request
   * came with one: it is the request's principal, before any bearer token.
   */
  peer?: (c: Context) => PeerIdentity | undefined;
};

export interface Auth {
  /** Puts the bearer token's principal in `c.get('principal')`; 401 without a valid one, 429 after too many failures. */
  middleware: MiddlewareHandler<Env>;
  /** 403 unless the principal has one of the roles; admin may do everything, an operator what a viewer may. */
  requireRole(...roles: Role[]): MiddlewareHandler<Env>;
  /** Whose token this is: static tokens first, then the token store. */
  authenticate(token: string): Principal | undefined;
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** The roles a principal of each role acts as: admin all of them, an operator a viewer too. */
const ACTS_AS: Readonly<Record<Role, readonly Role[]>> = {
  admin: ROLES,
  operator: ['operator', 'viewer'],
  viewer: ['viewer'],
  probe: ['probe'],
  balancer: ['balancer'],
  dns: ['dns'],
};

/** True when a principal of role `has` may use a route for `needed`. */
export function actsAs(has: Role, needed: Role): boolean {
  return ACTS_AS[has].includes(needed);
}

/** 403 unless the principal has one of `roles`; admin may do everything, an operator what a viewer may. */
export function requireRole(...roles: Role[]): MiddlewareHandler<Env> {
  const needed = roles.length > 0 ? roles.join(' or ') : 'admin';
  return async (c, next) => {
    const p = c.get('principal') as Principal | undefined;
    // Only reachable when a route was mounted outside the auth middleware: fail closed.
    if (!p) return problem(c, 401, 'missing Authorization: Bearer <token>');
    if (!roles.some((r) => actsAs(p.role, r)) && p.role !== 'admin') {
      return problem(c, 403, `this route needs the ${needed} role; the ${p.via === 'certificate' ? 'certificate' : 'token'} "${p.name}" has ${p.role}`);
    }
    await next();
  };
}

/** Bearer-token authentication, roles, and slowing down of repeated failures from one address. */
export function createAuth(opts: AuthOptions = {}): Auth {
  const now = opts.now ?? Date.now;
  const address = opts.address ?? remoteAddress;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const delayMs = opts.failures?.delayMs ?? 100;
  const maxDelayMs = opts.failures?.maxDelayMs ?? 1000;
  const failures = createFailureLog({ ...opts.failures, now });

  const statics = (opts.staticTokens ?? []).map((t) => {
    if (!t.token) throw new Error(`static token "${t.name}" is empty`);
    if (!ROLES.includes(t.role)) throw new Error(`static token "${t.name}" has unknown role "${t.role}"`);
    const binding = checkBinding(t.role, t);
    const principal: Principal = { role: t.role, name: t.name, via: 'token', ...binding };
    return { principal, digest: sha256(t.token) };
  });

  const authenticate = (token: string): Principal | undefined => {
    const digest = sha256(token);
    // Compare with every static token, so the time taken does not say which one (if any) matched.
    let hit: Principal | undefined;
    for (const t of statics) if (timingSafeEqual(t.digest, digest) && !hit) hit = t.principal;
    return hit ?? opts.tokens?.verify(token);
  };

  const isOpen = (path: string) =>
    path === '/openapi.json' ||
    path === '/docs' ||
    path.startsWith('/docs/') ||
    (path === '/healthz' && opts.open?.health !== false) ||
    (path === '/metrics' && opts.open?.metrics === true);

  const middleware: MiddlewareHandler<Env> = async (c, next) => {
    if (isOpen(c.req.path)) return next();
    const peer = opts.peer?.(c);
    if (peer && 'error' in peer) return problem(c, 403, `client certificate refused: ${peer.error}`);
    if (peer) {
      c.set('principal', peer.principal);
      return next();
    }

    const client = addressKey(address(c));
    const header = c.req.header('authorization');
    if (header === undefined) {
      c.header('WWW-Authenticate', 'Bearer realm="arus"');
      return problem(c, 401, 'missing Authorization: Bearer <token>');
    }
    const m = /^Bearer +(\S+) *$/i.exec(header);
    const principal = m ? authenticate(m[1]) : undefined;
    if (!principal) {
      // A valid token is never refused for its neighbours' mistakes (in-process probes share
      // 127.0.0.1 with every local tool); guesses from a noisy address are slowed, then refused.
      // Tokens carry 256 random bits, so telling valid from invalid gives a guesser nothing.
      const waitMs = failures.blockedFor(client);
      if (waitMs > 0) {
        const seconds = Math.ceil(waitMs / 1000);
        c.header('Retry-After', String(seconds));
        return problem(c, 429, `too many failed authentication attempts from this address; retry in ${seconds} s`);
      }
      const count = failures.fail(client);
      const delay = count < 2 ? 0 : Math.min(maxDelayMs, delayMs * 2 ** (count - 2));
      if (delay > 0) await sleep(delay);
      c.header('WWW-Authenticate', `Bearer realm="arus", error="${m ? 'invalid_token' : 'invalid_request'}"`);
      return problem(c, 401, m ? 'unknown or revoked token' : 'malformed Authorization header: use Bearer <token>');
    }
    // A success does not clear the address's failures: one valid viewer token must not buy unlimited guesses at others.
    c.set('principal', principal);
    await next();
  };

  return { middleware, requireRole, authenticate };
}

export type FailureLog = {
  /** Records a failure; how many the address has in the window, this one included. */
  fail(address: string): number;
  /** Milliseconds until the address may try again; 0 when it may now. */
  blockedFor(address: string): number;
  /** Addresses remembered. */
  size(): number;
};

/** Failed attempts per address in a sliding window, in bounded memory. */
export function createFailureLog(opts: FailureOptions & { now?: () => number } = {}): FailureLog {
  const now = opts.now ?? Date.now;
  const windowMs = opts.windowMs ?? 60_000;
  const max = Math.max(1, opts.max ?? 10);
  const maxAddresses = Math.max(1, opts.maxAddresses ?? 10_000);
  // Insertion order is the order of each address's latest failure: the first key failed longest ago.
  const byAddress = new Map<string, number[]>();

  const recent = (address: string, t: number): number[] => {
    const times = byAddress.get(address);
    if (!times) return [];
    while (times.length > 0 && times[0] <= t - windowMs) times.shift();
    if (times.length === 0) byAddress.delete(address);
    return times;
  };

  return {
    fail(address) {
      const t = now();
      const times = recent(address, t);
      times.push(t);
      // No more than `max` are needed to know the address is blocked, and until when.
      if (times.length > max) times.shift();
      byAddress.delete(address);
      byAddress.set(address, times);
      for (const [oldest, ts] of byAddress) {
        if (byAddress.size <= maxAddresses && ts[ts.length - 1] > t - windowMs) break;
        byAddress.delete(oldest);
      }
      return times.length;
    },

    blockedFor(address) {
      const t = now();
      const times = recent(address, t);
      return times.length >= max ? times[times.length - max] + windowMs - t : 0;
    },

    size: () => byAddress.size,
  };
}

function remoteAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    // `app.request()` in tests has no socket.
    return 'unknown';
  }
}

/** IPv4-mapped IPv6 counts as its IPv4 address; other IPv6 addresses by their /64, which one client usually holds whole. */
export function addressKey(text: string): string {
  const a = parseAddress(text);
  if (!a || a.family === 4) return text;
  if (isMappedIPv4(a)) return formatIPv4(a.words[3]);
  const hex = (w: number) => [(w >>> 16).toString(16), (w & 0xffff).toString(16)];
  return `${[...hex(a.words[0]), ...hex(a.words[1])].join(':')}::/64`;
}
