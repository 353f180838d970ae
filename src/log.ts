import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * The root logger, JSON lines on stdout; components take `log.child({ component })`.
 * Level from ARUS_LOG_LEVEL. When stdout's reader is gone (EPIPE: `arus up | head`
 * and head exited) logging stops instead of retrying the write for ever, which
 * would hang the process at exit.
 */
export function createLogger(opts: { level?: string } = {}): Logger {
  const out = pino.destination({ dest: 1, sync: true });
  out.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') return;
    out.write = () => true;
    out.flushSync = () => {};
    out.end = () => {};
  });
  return pino({ level: opts.level ?? process.env.ARUS_LOG_LEVEL ?? 'info', base: { app: 'arus' } }, out);
}

/** A logger that drops everything: for tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
