import pino, { type Logger } from 'pino';

export type { Logger };

/** The root logger; components take `log.child({ component })`. Level from ARUS_LOG_LEVEL. */
export function createLogger(opts: { level?: string } = {}): Logger {
  return pino({ level: opts.level ?? process.env.ARUS_LOG_LEVEL ?? 'info', base: { app: 'arus' } });
}

/** A logger that drops everything: for tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
