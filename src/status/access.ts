import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { addressKey, createFailureLog, type Auth, type FailureOptions } from '../api/auth.js';
import { problem, type Env, type Principal } from '../api/env.js';

/** The cookie the status page's viewer token travels in. */
export const STATUS_COOKIE = 'arus_status';
/** How long a browser keeps it (the token's revocation ends it sooner). */
export const COOKIE_MAX_AGE_S = 24 * 3600;
/** The page itself: open to everyone, it holds no data. */
export const PAGE_PATH = '/';
/** The only routes the cookie (or open mode) authorises, and only for GET: the page's reads. */
export const STATUS_READS: ReadonlySet<string> = new Set(['/v1/status', '/v1/events', '/v1/events/stream']);

export type StatusAccessOptions = {
  /**
   * Open mode (ARUS_STATUS_OPEN=true): the status reads need no token from a
   * client on loopback that asked for a loopback host name. For `arus up` on
   * a workstation; never reaches past the machine, nor a page elsewhere that
   * rebinds its DNS name to 127.0.0.1.
   */
  open?: boolean;
  /** The client's address (default: the socket's peer; none under `app.request()`). */
  peer?: (c: Context) => string | undefined;
  /** Failed token exchanges per address, as for bearer tokens. */
  failures?: FailureOptions;
};

export type StatusAccess = Auth & {
  /**
   * `?token=` on the page: a viewer token becomes an HttpOnly, SameSite=Strict
   * cookie and the browser is sent back to the bare page (the token leaves the
   * address bar and history). Other roles are refused: an admin token never
   * sits in a browser's cookie jar.
   */
  exchange(c: Context<Env>, token: string): { ok: true } | { ok: false; status: 401 | 403 | 429; error: string };
  signOut(c: Context<Env>): void;
  open: boolean;
};

/**
 * Bearer authentication, plus what a browser can do without a header: load
 * the page, and GET the status reads with the cookie (or, in open mode, from
 * loopback). The principal is then a viewer whatever the token, and no other
 * route ever looks at the cookie — a write with the cookie alone is a 401.
 */
export function withStatusAccess(auth: Auth, opts: StatusAccessOptions = {}): StatusAccess {
  const peer = opts.peer ?? socketPeer;
  const failures = createFailureLog(opts.failures);
  const open = opts.open === true;

  const middleware: MiddlewareHandler<Env> = async (c, next) => {
    if (c.req.path === PAGE_PATH && c.req.method === 'GET') return next();
    if (c.req.method === 'GET' && STATUS_READS.has(c.req.path) && c.req.header('authorization') === undefined) {
      const token = getCookie(c, STATUS_COOKIE);
      if (token !== undefined) {
        const p = auth.authenticate(token);
        if (p?.role !== 'viewer') {
          failures.fail(addressKey(peer(c) ?? 'unknown'));
          deleteCookie(c, STATUS_COOKIE, { path: '/' });
          c.header('WWW-Authenticate', 'Bearer realm="arus"');
          return problem(c, 401, 'the status cookie holds an unknown or revoked token: open the page with ?token=<viewer token> again');
        }
        c.set('principal', { role: 'viewer', name: `${p.name} (status page)`, tokenId: p.tokenId });
        return next();
      }
      if (open && onLoopback(c, peer)) {
        c.set('principal', { role: 'viewer', name: 'status page (open on loopback)' } satisfies Principal);
        return next();
      }
    }
    return auth.middleware(c, next);
  };

  return {
    ...auth,
    middleware,
    open,
    exchange(c, token) {
      const client = addressKey(peer(c) ?? 'unknown');
      if (failures.blockedFor(client) > 0) return { ok: false, status: 429, error: 'too many failed attempts from this address; try again in a minute' };
      const p = auth.authenticate(token);
      if (!p) {
        failures.fail(client);
        return { ok: false, status: 401, error: 'unknown or revoked token' };
      }
      if (p.role !== 'viewer') return { ok: false, status: 403, error: `the status page takes a viewer token, and this one is ${p.role}: make one with \`arus token create --role viewer\`` };
      setCookie(c, STATUS_COOKIE, token, { path: '/', httpOnly: true, sameSite: 'Strict', secure: isHttps(c), maxAge: COOKIE_MAX_AGE_S });
      return { ok: true };
    },
    signOut(c) {
      deleteCookie(c, STATUS_COOKIE, { path: '/', secure: isHttps(c) });
    },
  };
}

function socketPeer(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined;
  }
}

const LOOPBACK_HOST = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d+)?$/i;

/** A loopback peer asking for a loopback name: nothing else on the network, and no rebound DNS name. */
export function onLoopback(c: Context, peer: (c: Context) => string | undefined): boolean {
  const address = peer(c);
  const key = address === undefined ? undefined : addressKey(address);
  const local = key !== undefined && (key.startsWith('127.') || address === '::1');
  return local && LOOPBACK_HOST.test(c.req.header('host') ?? '');
}

function isHttps(c: Context): boolean {
  return new URL(c.req.url).protocol === 'https:' || c.req.header('x-forwarded-proto') === 'https';
}
