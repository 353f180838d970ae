import type { Logger } from '../log.js';
import type { ProbeTargets } from './types.js';

// The targets an agent checks, whichever replica of control gave them: the
// highest version seen wins, so a replica that lags cannot take the agent
// back to an older list. With one control its answer is the truth, as it
// always was (a restored database may move its version back).

export interface HeldTargets {
  readonly current: ProbeTargets | undefined;
  /** A list from a replica; true when it replaced the one held. */
  offer(next: ProbeTargets, from: string): boolean;
  /** Whether a version a replica names is worth fetching (newer than held, or any other with one control). */
  wants(version: number): boolean;
}

export function createHeldTargets(deps: { log: Logger; replicas: number; onTargets(next: ProbeTargets): void }): HeldTargets {
  let held: ProbeTargets | undefined;
  const wants = (version: number) => held === undefined || (deps.replicas > 1 ? version > held.version : version !== held.version);
  return {
    get current() {
      return held;
    },
    offer(next, from) {
      // The same version again (every replica has it): nothing new to check.
      if (held !== undefined && !wants(next.version)) return false;
      deps.log.info({ version: next.version, targets: next.targets.length, ...(deps.replicas > 1 ? { control: from } : {}) }, 'targets loaded');
      held = next;
      deps.onTargets(next);
      return true;
    },
    wants,
  };
}
