import type { Config } from '../config/schema.js';
import type { HealthStore } from '../db/health-store.js';
import type { Store } from '../db/store.js';
import { parseSubject } from '../health/overrides.js';

export class OverrideError extends Error {}

/** Does the subject name something in the configuration? */
function exists(config: Config, subject: string): boolean {
  const s = parseSubject(subject);
  if (!s) return false;
  const [region, zone, address] = s.key.split('/');
  const r = config.regions.find((x) => x.id === region);
  if (!r || s.level === 'region') return !!r;
  const z = r.zones.find((x) => x.id === zone);
  if (!z || s.level === 'zone') return !!z;
  return z.endpoints.some((e) => e.address === address);
}

/**
 * Drain (force down) or force up a region, zone or endpoint, or lift that;
 * recorded as an event in the same transaction. Control picks the change up
 * within its tick.
 */
export function setOverride(
  deps: { store: Store; healthStore: HealthStore },
  o: { subject: string; mode: 'drain' | 'force-up' | 'none'; reason: string; actor?: string },
): { changed: boolean } {
  return deps.store.transaction(() => writeOverride(deps, o));
}

function writeOverride(
  deps: { store: Store; healthStore: HealthStore },
  o: { subject: string; mode: 'drain' | 'force-up' | 'none'; reason: string; actor?: string },
): { changed: boolean } {
  const config = deps.store.getConfig();
  if (!config || !exists(config, o.subject))
    throw new OverrideError(`no such subject "${o.subject}": use region:<id>, zone:<region>/<zone> or endpoint:<region>/<zone>/<address>`);
  const region = o.subject.slice(o.subject.indexOf(':') + 1).split('/')[0];
  if (o.mode === 'none') {
    const before = deps.healthStore.clearOverride(o.subject);
    if (!before) return { changed: false };
    deps.store.recordEvent({ kind: before.mode === 'drain' ? 'undrain' : 'force-up.cleared', subject: o.subject, oldState: before.mode, newState: 'none', reason: `${o.reason}${o.actor ? ` (by ${o.actor})` : ''}`, region });
    return { changed: true };
  }
  const before = deps.healthStore.setOverride({ subject: o.subject, mode: o.mode, reason: o.reason, actor: o.actor });
  if (before?.mode === o.mode && before.reason === o.reason) return { changed: false };
  deps.store.recordEvent({ kind: o.mode === 'drain' ? 'drain' : 'force-up', subject: o.subject, oldState: before?.mode ?? 'none', newState: o.mode, reason: `${o.reason}${o.actor ? ` (by ${o.actor})` : ''}`, region });
  return { changed: true };
}
