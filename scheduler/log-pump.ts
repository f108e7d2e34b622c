import type { Logger } from '../src/core/logger.ts';
import type { ContainerEngine, LogLine } from './engine.ts';

const LOG_FLUSH_MS = 200;
const LOG_FLUSH_LINES = 500;
/** A batch is stored once it holds this many characters, whatever its line count. */
const LOG_FLUSH_CHARS = 1024 * 1024;
/** Output held while the database is away; beyond it the oldest lines go. */
const MAX_BUFFERED_LOG_LINES = 10_000;
const LOG_RETRY_MS = 1000;

export interface LogPumpOptions {
  engine: Pick<ContainerEngine, 'followLogs'>;
  store: { appendLogs(backendId: string, lines: LogLine[]): Promise<void> };
  log: Logger;
  /** Ends the reading (the node stops). */
  signal: AbortSignal;
}

/**
 * Reads a container's output into the store, in small batches, from `since`
 * until the container stops or the signal aborts. Reading waits while a full
 * batch is stored, so a burst stays in the engine, not in berth's memory.
 * While the database is away the lines are held (bounded) and stored again
 * shortly. Resolves once the stream has ended and what was read is written.
 */
export function pumpLogs(options: LogPumpOptions, backendId: string, containerId: string, since: Date | undefined): Promise<void> {
  const buffer: LogLine[] = [];
  let timer: NodeJS.Timeout | undefined;
  let writing = Promise.resolve();
  let chars = 0;
  let dropped = 0;
  const flush = (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    chars = 0;
    const lines = buffer.splice(0);
    writing = writing.then(async () => {
      if (lines.length === 0) return;
      try {
        await options.store.appendLogs(backendId, lines);
      } catch (error) {
        buffer.unshift(...lines);
        if (buffer.length > MAX_BUFFERED_LOG_LINES) dropped += buffer.splice(0, buffer.length - MAX_BUFFERED_LOG_LINES).length;
        options.log.warn({ err: error, backend_id: backendId, held: buffer.length, dropped }, 'storing log lines failed; holding them');
        await new Promise((resolve) => setTimeout(resolve, LOG_RETRY_MS));
        timer ??= setTimeout(() => void flush(), 0);
      }
    });
    return writing;
  };
  return options.engine
    .followLogs(containerId, {
      since,
      signal: options.signal,
      onLine: (line) => {
        buffer.push(line);
        chars += line.line.length;
        if (buffer.length >= LOG_FLUSH_LINES || chars >= LOG_FLUSH_CHARS) return flush();
        timer ??= setTimeout(() => void flush(), LOG_FLUSH_MS);
        return undefined;
      },
    })
    .catch((error: unknown) => options.log.warn({ err: error, backend_id: backendId }, 'following logs failed'))
    .then(flush);
}
