// How a server command ends: on SIGINT or SIGTERM it stops its parts, last
// started first, then exits.
import type { Logger } from '../log.js';
import type { Stoppable } from '../roles.js';

/** Stop `parts` in reverse order on the first SIGINT or SIGTERM, then exit 0. */
export function onSignal(parts: Stoppable[], log: Logger): void {
  const shutdown = async (signal: string) => {
    log.info({ signal }, 'shutting down');
    for (const p of [...parts].reverse()) await p.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}
