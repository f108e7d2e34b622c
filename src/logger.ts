import { pino, type Logger } from 'pino';

export type { Logger };

/** One JSON line per event on stdout; pino because it is fast and structured by default. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'berth' } });
}
