// Hostname endpoints' names, followed: control resolves each (A and AAAA)
// through its resolver (`--resolver`, else the system's), keeps the answer
// within its TTL and asks again ahead of expiry (at three quarters of it), so a
// flattened answer follows the target's addresses. A name that does not exist
// or has no address is unresolvable at once (its endpoint down, the reason in
// the history); a resolver that fails (timeout, SERVFAIL, refused) is retried
// with back-off while the last answer is kept for a stale window past its
// expiry (serve-stale, RFC 8767, kept short: steering must not hand out
// addresses long gone), then the name is unresolvable too.
import { Resolver } from 'node:dns/promises';
import type { Logger } from '../log.js';
import type { HostnameResolution, ResolvedMap } from '../snapshot/snapshot.js';

/** A name is asked again at this share of its TTL. */
const REFRESH_AT = 0.75;
/** Never asked more often than this (a TTL of 0 or 1), nor less often than the cap. */
const MIN_REFRESH_MS = 1000;
const MAX_REFRESH_MS = 3_600_000;
/** An unresolvable name is asked again this often: its endpoint comes back soon after the name does. */
const RETRY_UNRESOLVABLE_MS = 2000;
/** A failing resolver: back-off from 1 s to 8 s; the last answer kept this long past its expiry. */
const BACKOFF_MS = [1000, 2000, 4000, 8000];
export const STALE_MS = 30_000;
/** The resolver's own limits: one query waits this long, and is sent this many times. */
const QUERY_TIMEOUT_MS = 1500;
const QUERY_TRIES = 2;

/** One lookup of a name: its addresses with the lowest TTL, `definitive` when the name has none (NXDOMAIN, NODATA). */
export type Lookup = (name: string) => Promise<{ addresses: string[]; ttl: number } | { error: string; definitive: boolean }>;

export interface HostnameFollower {
  /** What each followed name resolved to; a name not yet asked is absent. */
  resolved(): ResolvedMap;
  /** The names to follow (the configuration's hostname endpoints); others are forgotten. */
  follow(names: readonly string[]): void;
  /** Asks every name due now (the timer does this; tests too). */
  poll(): Promise<void>;
  start(): void;
  stop(): void;
}

type Entry = {
  result?: HostnameResolution;
  /** Monotonic ms: when the last good answer expires, when to ask next. */
  expiresAt: number;
  nextAt: number;
  failures: number;
  /** The lookup under way. */
  pending?: Promise<void>;
};

/** Looks names up with node's resolver (c-ares), at `servers` when given (HOST or HOST:PORT, [V6]:PORT). */
export function createLookup(servers?: readonly string[]): Lookup {
  const resolver = new Resolver({ timeout: QUERY_TIMEOUT_MS, tries: QUERY_TRIES });
  if (servers?.length) resolver.setServers([...servers]);
  const where = servers?.length ? servers.join(', ') : 'the system resolver';
  return async (name) => {
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(name, { ttl: true }), resolver.resolve6(name, { ttl: true })]);
    const records = [v4, v6].flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    if (records.length) return { addresses: [...new Set(records.map((r) => r.address))].sort(), ttl: Math.min(...records.map((r) => r.ttl)) };
    const codes = [v4, v6].map((r) => (r.status === 'rejected' ? String((r.reason as { code?: string }).code ?? (r.reason as Error).message) : 'ENODATA'));
    if (codes.includes('ENOTFOUND')) return { error: `NXDOMAIN from ${where}`, definitive: true };
    if (codes.every((c) => c === 'ENODATA')) return { error: `no A or AAAA record at ${where}`, definitive: true };
    return { error: `${codes.find((c) => c !== 'ENODATA')} from ${where}`, definitive: false };
  };
}

const same = (a: HostnameResolution | undefined, b: HostnameResolution) =>
  a !== undefined && ('error' in a ? 'error' in b && a.error === b.error : 'addresses' in b && a.addresses.join() === b.addresses.join());

export function createHostnameFollower(deps: {
  lookup: Lookup;
  /** The monotonic clock (ms). */
  mono: () => number;
  /** A name's resolution changed (its addresses, or it stopped or started resolving). */
  onChange: (why: string) => void;
  log: Logger;
  /** How often due names are looked for (ms). Default 250. */
  everyMs?: number;
}): HostnameFollower {
  const { lookup, mono, log } = deps;
  const entries = new Map<string, Entry>();
  let timer: NodeJS.Timeout | undefined;
  let view: ResolvedMap = {};

  function refreshView(): void {
    const out: Record<string, HostnameResolution> = {};
    for (const [name, e] of entries) if (e.result) out[name] = e.result;
    view = Object.freeze(out);
  }

  function settle(name: string, e: Entry, next: HostnameResolution, why: string): void {
    const changed = !same(e.result, next);
    e.result = next;
    if (!changed) return;
    refreshView();
    log.info({ hostname: name, ...('error' in next ? { error: next.error } : { addresses: next.addresses, ttl: next.ttl }) }, why);
    try {
      deps.onChange(`${why}: ${name}${'error' in next ? ` (${next.error})` : ` → ${next.addresses.join(' ')}`}`);
    } catch (err) {
      log.error({ err, hostname: name }, 'publishing a hostname change failed; the next change or tick publishes it');
    }
  }

  async function ask(name: string, e: Entry): Promise<void> {
    let out: Awaited<ReturnType<Lookup>>;
    try {
      out = await lookup(name);
    } catch (err) {
      out = { error: (err as Error).message, definitive: false };
    }
    if (entries.get(name) !== e) return; // forgotten meanwhile
    const t = mono();
    if ('addresses' in out) {
      e.failures = 0;
      e.expiresAt = t + out.ttl * 1000;
      e.nextAt = t + Math.min(MAX_REFRESH_MS, Math.max(MIN_REFRESH_MS, out.ttl * 1000 * REFRESH_AT));
      return settle(name, e, { addresses: out.addresses, ttl: out.ttl }, e.result && !('error' in e.result) ? 'hostname re-resolved' : 'hostname resolves');
    }
    if (!out.definitive && e.result && !('error' in e.result) && t < e.expiresAt + STALE_MS) {
      e.nextAt = t + BACKOFF_MS[Math.min(e.failures++, BACKOFF_MS.length - 1)];
      log.warn({ hostname: name, error: out.error, staleForMs: Math.max(0, t - e.expiresAt) }, 'hostname lookup failed: keeping its last addresses for now');
      return;
    }
    e.nextAt = t + (out.definitive ? RETRY_UNRESOLVABLE_MS : BACKOFF_MS[Math.min(e.failures++, BACKOFF_MS.length - 1)]);
    settle(name, e, { error: out.error }, 'hostname does not resolve');
  }

  /** Starts the lookups due, and waits for every lookup under way. */
  async function poll(): Promise<void> {
    const t = mono();
    for (const [name, e] of entries)
      if (!e.pending && e.nextAt <= t) e.pending = ask(name, e).finally(() => (e.pending = undefined));
    await Promise.all([...entries.values()].flatMap((e) => (e.pending ? [e.pending] : [])));
  }

  return {
    resolved: () => view,
    follow(names) {
      const wanted = new Set(names);
      let dropped = false;
      for (const name of entries.keys()) if (!wanted.has(name)) dropped = entries.delete(name) || dropped;
      for (const name of wanted) if (!entries.has(name)) entries.set(name, { expiresAt: 0, nextAt: 0, failures: 0 });
      if (dropped) refreshView();
      if (entries.size) void poll();
    },
    poll,
    start() {
      timer ??= setInterval(() => void poll(), deps.everyMs ?? 250);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
