// A machine may speak only for the identity its credential names: a probe
// agent for itself (and its region), a balancer for its region, a DNS node for
// itself. The body's own claim is checked against the credential, never
// believed; a mismatch is refused (403), counted and audited, and nothing of
// the request reaches control.
import type { Context } from 'hono';
import type { Binding, Principal } from '../db/tokens.js';
import type { ApiDeps, RefusalLog } from './deps.js';
import { problem, type Env } from './env.js';

/** Which part of `claim` a principal may not speak for, and why; undefined when it may. Admins may speak for anyone. */
export function mismatch(p: Principal, claim: Binding): { key: keyof Binding; reason: string } | undefined {
  if (p.role === 'admin') return undefined;
  for (const key of ['agent', 'region', 'node'] as const) {
    const claimed = claim[key];
    if (claimed === undefined) continue;
    const bound = p[key];
    const credential = `the ${p.via === 'certificate' ? 'certificate' : 'token'} "${p.name}"`;
    if (bound === undefined) return { key, reason: `${credential} is bound to no ${key}, and may not speak for ${key} ${claimed}` };
    if (bound !== claimed) return { key, reason: `${credential} speaks for ${key} ${bound}, not ${claimed}` };
  }
  return undefined;
}

/**
 * Refusals audited per credential by token bucket (20 at once, then 1 a
 * second): a stolen credential sending forged reports as fast as it can must
 * not turn each 403 into a database write. Every refusal is still counted.
 */
export function createRefusalLog(o: { burst?: number; perSecond?: number; now?: () => number } = {}): RefusalLog {
  const burst = o.burst ?? 20;
  const perSecond = o.perSecond ?? 1;
  const now = o.now ?? Date.now;
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    admit(actor) {
      const t = now();
      const b = buckets.get(actor) ?? { tokens: burst, at: t };
      b.tokens = Math.min(burst, b.tokens + (Math.max(0, t - b.at) / 1000) * perSecond);
      b.at = t;
      buckets.delete(actor);
      buckets.set(actor, b);
      // Credentials are few (bounded by the token table and the CA); forget the oldest past a generous bound.
      if (buckets.size > 10_000) buckets.delete(buckets.keys().next().value!);
      if (b.tokens < 1) return false;
      b.tokens -= 1;
      return true;
    },
  };
}

/**
 * Refuses a request whose body speaks for another identity than its
 * credential's: 403, the refusal counted, and an audit row (up to the
 * credential's audit rate, see createRefusalLog).
 */
export function refuseIdentity(
  c: Context<Env>,
  deps: Pick<ApiDeps, 'audit' | 'onIdentityRefused' | 'log' | 'refusals'>,
  o: { subject: string; claim: Binding; refused: { key: keyof Binding; reason: string } },
): never {
  const p = c.get('principal');
  deps.onIdentityRefused?.(p.role, o.refused.key);
  if (deps.refusals?.admit(p.name) ?? true) {
    deps.audit?.({ actor: p.name, role: p.role, action: `${c.req.method} ${c.req.path}`, subject: o.subject, before: null, after: { refused: o.refused.reason, claimed: o.claim }, status: 403 });
    deps.log.warn({ actor: p.name, role: p.role, path: c.req.path, claim: o.claim }, 'request refused: it speaks for another identity than its credential');
  }
  return problem(c, 403, o.refused.reason);
}
