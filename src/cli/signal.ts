// How a server command ends: on SIGINT or SIGTERM it stops its parts, last
// started first, then exits.
import type { Logger } from '../log.js';
import type { Stoppable } from '../roles.js';

/**
 * Stop `parts` in reverse order on the first SIGINT or SIGTERM, then exit 0.
 * Called before the command logs `ready`: whoever reads that line may stop the
 * process at once, and a signal with no handler yet kills it (exit by SIGTERM).
 */
export function onSignal(parts: Stoppable[], log: Logger): void {
  const shutdown = async (signal: string) => {
    log.info({ signal }, 'shutting down');
    for (const p of [...parts].reverse()) await p.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}
