import { pino, type DestinationStream, type Logger } from 'pino';

export type { DestinationStream, Logger };

/**
 * One JSON line per event; pino because it is fast and structured by default.
 * Lines go to stdout unless a `destination` is given (tests read them there).
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, base: { service: 'berth' } }, destination);
}
