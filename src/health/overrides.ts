import type { EndpointHealth } from './types.js';

export type Override = {
  /** `region:jkt`, `zone:jkt/jkt-a` or `endpoint:jkt/jkt-a/203.0.113.21`. */
  subject: string;
  /** drain forces down; force-up forces up. */
  mode: 'drain' | 'force-up';
  reason: string;
};

export type EffectiveHealth = {
  state: 'up' | 'down';
  reason: string;
  /** Set when an override decided the state (the probes' transition then does not apply). */
  override?: Override['mode'];
};

export type Subject = { level: 'region' | 'zone' | 'endpoint'; key: string };

const PARTS = { region: 1, zone: 2, endpoint: 3 } as const;

/** Parses an override subject; undefined when malformed (for the API to reject). */
export function parseSubject(subject: string): Subject | undefined {
  const colon = subject.indexOf(':');
  const level = subject.slice(0, colon);
  const key = subject.slice(colon + 1);
  if (colon < 0 || !Object.hasOwn(PARTS, level)) return undefined;
  const parts = splitKey(key, PARTS[level as Subject['level']]);
  return parts && parts.every(Boolean) ? { level: level as Subject['level'], key } : undefined;
}

/**
 * Admin overrides on top of probe health. The most specific subject wins
 * (endpoint over zone over region), so an operator can drain a region but keep
 * one endpoint forced up; between two overrides on the same subject, drain wins
 * (taking traffic away is the safe reading of a contradiction).
 */
export function applyOverrides(
  health: ReadonlyMap<string, EndpointHealth>,
  overrides: readonly Override[],
): Map<string, EffectiveHealth> {
  const bySubject = new Map<string, { o: Override; level: Subject['level'] }>();
  for (const o of overrides) {
    const s = parseSubject(o.subject);
    if (!s) continue;
    const id = `${s.level}:${s.key}`;
    const held = bySubject.get(id);
    if (!held || (held.o.mode === 'force-up' && o.mode === 'drain')) bySubject.set(id, { o, level: s.level });
  }
  const out = new Map<string, EffectiveHealth>();
  for (const [key, h] of health) {
    const [region, zone] = splitKey(key, 3) ?? [key, ''];
    const hit =
      bySubject.get(`endpoint:${key}`) ?? bySubject.get(`zone:${region}/${zone}`) ?? bySubject.get(`region:${region}`);
    if (!hit) {
      out.set(key, { state: h.state, reason: h.evidence });
      continue;
    }
    const where = hit.level === 'region' ? `region ${region}` : hit.level === 'zone' ? `zone ${region}/${zone}` : `endpoint ${key}`;
    const drained = hit.o.mode === 'drain';
    out.set(key, {
      override: hit.o.mode,
      state: drained ? 'down' : 'up',
      reason: `${drained ? 'drained' : 'forced up'}: ${hit.o.reason} (${where})`,
    });
  }
  return out;
}

/** `region/zone/address` split into at most `n` parts; the address keeps any further slashes. */
function splitKey(key: string, n: number): string[] | undefined {
  const a = key.indexOf('/');
  if (n === 1) return a < 0 ? [key] : undefined;
  if (a < 0) return undefined;
  const b = key.indexOf('/', a + 1);
  if (n === 2) return b < 0 ? [key.slice(0, a), key.slice(a + 1)] : undefined;
  if (b < 0) return undefined;
  return [key.slice(0, a), key.slice(a + 1, b), key.slice(b + 1)];
}
