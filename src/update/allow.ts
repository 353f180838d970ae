// A TSIG key's `TYPE:NAME` patterns (`arus tsig create --allow`): read from
// their text, and matched against the RRsets an update changes.
import { RECORD_TYPES } from '../config/record-values.js';
import { TsigKeyError, type AllowPattern } from '../db/tsig-keys.js';

const PATTERN_NAME = /^(\*|@|[a-z0-9_*]([a-z0-9_*.-]{0,250}))\.?$/;

/** `TXT:_acme-challenge.*` → a pattern; throws with the reason. */
export function parseAllow(text: string): AllowPattern {
  const i = text.indexOf(':');
  if (i < 0) throw new TsigKeyError(`--allow ${text}: write TYPE:NAME, such as TXT:_acme-challenge.*`);
  const type = text.slice(0, i).trim().toUpperCase();
  const name = text.slice(i + 1).trim().toLowerCase();
  const t = type === 'ANY' ? '*' : type;
  if (t !== '*' && !(RECORD_TYPES as readonly string[]).includes(t)) throw new TsigKeyError(`--allow ${text}: the type must be * or one of ${RECORD_TYPES.join(', ')}`);
  if (!PATTERN_NAME.test(name)) throw new TsigKeyError(`--allow ${text}: the name must be a DNS name (relative to the apex, @, or absolute with a final dot), * matching any characters`);
  return { type: t, name };
}

const glob = (pattern: string) => new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.\\+?^${}()|[\]]/g, '\\$&')).join('.+')}$`);

/**
 * Whether a pattern covers `type` at `owner` (absolute, lowercase, no final dot) in the zone `apex`:
 * a name with a final dot is absolute; `@` is the apex; any other is matched against the
 * relative name and, when it has a `*`, against the absolute one too (`_acme-challenge.*`).
 */
export function allows(patterns: readonly AllowPattern[], type: string, owner: string, apex: string): boolean {
  const relative = owner === apex ? '@' : owner.endsWith(`.${apex}`) ? owner.slice(0, -apex.length - 1) : undefined;
  return patterns.some((p) => {
    if (p.type !== '*' && p.type !== type) return false;
    if (p.name.endsWith('.')) return glob(p.name.slice(0, -1)).test(owner);
    if (p.name === '@') return owner === apex;
    return (relative !== undefined && glob(p.name).test(relative)) || (p.name.includes('*') && glob(p.name).test(owner));
  });
}

export const formatAllow = (p: AllowPattern) => `${p.type}:${p.name}`;
