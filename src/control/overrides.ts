import type { Config } from '../config/schema.js';
import type { Store } from '../db/store.js';
import type { Writes } from '../db/writes.js';
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

/** Throws an OverrideError unless the subject names something in the configuration. */
export function checkSubject(config: Config | undefined, subject: string): void {
  if (!config || !exists(config, subject))
    throw new OverrideError(`no such subject "${subject}": use region:<id>, zone:<region>/<zone> or endpoint:<region>/<zone>/<address>`);
}

/**
 * Drain (force down) or force up a region, zone or endpoint, or lift that;
 * recorded as an event with it (db/writes.ts). Control picks the change up
 * within its tick.
 */
export async function setOverride(
  deps: { store: Pick<Store, 'getConfig'>; writes: Writes },
  o: { subject: string; mode: 'drain' | 'force-up' | 'none'; reason: string; actor?: string },
): Promise<{ changed: boolean }> {
  checkSubject(deps.store.getConfig(), o.subject);
  return deps.writes.setOverride(o);
}
