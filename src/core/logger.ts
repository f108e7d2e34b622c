import { pino, type DestinationStream, type Logger } from 'pino';

export type { DestinationStream, Logger };

/**
 * One JSON line per event; pino because it is fast and structured by default.
 * Lines go to stdout unless a `destination` is given (tests read them there).
 *
 * stdout is written asynchronously (sonic-boom, as pino recommends for
 * throughput): the lines logged while a write is in flight go out together in
 * the next one, so a busy berth makes one write(2) per batch rather than one
 * per request line, and a quiet one writes each line at once. pino flushes
 * what is pending when the process exits; only a SIGKILL loses the last lines.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, base: { service: 'berth' } }, destination ?? pino.destination({ dest: 1, sync: false }));
}
