import type Dockerode from 'dockerode';
import { DockerLogParser } from './log-frames.ts';
import type { LogLine } from '../engine.ts';

export interface FollowLogsOptions {
  /** Only lines written after this time (the last one berth already stored). */
  since?: Date;
  signal: AbortSignal;
  /**
   * Called for each line. A returned promise pauses reading until it settles:
   * the consumer's way of saying it holds enough, so a burst of output waits in
   * the engine rather than in berth's memory.
   */
  onLine: (line: LogLine) => void | Promise<void>;
}

/** Longest line stored, in bytes of UTF-8; the rest is counted in a `… [truncated N bytes]` marker. */
export const MAX_LOG_LINE_BYTES = 16 * 1024;

/**
 * Follows what a container writes to stdout and stderr, from `since` until the
 * container stops (the engine ends the stream) or the signal aborts. A stopped
 * container's output is read to its end and the promise resolves.
 */
export async function followContainerLogs(docker: Dockerode, containerId: string, options: FollowLogsOptions): Promise<void> {
  const sinceMs = options.since?.getTime();
  const stream = (await docker.getContainer(containerId).logs({
    follow: true,
    stdout: true,
    stderr: true,
    timestamps: true,
    // Docker takes fractional seconds; whole-second rounding down re-reads a few lines, skipped below.
    ...(sinceMs !== undefined ? { since: Math.floor(sinceMs / 1000) } : {}),
  })) as unknown as NodeJS.ReadableStream & { destroy(): void };

  let holds = 0;
  const release = () => {
    if (--holds === 0) stream.resume();
  };
  // The engine stamps each message as it reads it from the container's pipe, so within one stream
  // times only rise (across stdout and stderr they may interleave out of order). Its json-file follower
  // can hand out lines again when the file rotates under it; those come with older times and are dropped.
  const latestMs = new Map<string, number>();
  const parser = new DockerLogParser(
    (line) => {
      const ms = line.time.getTime();
      if (sinceMs !== undefined && ms <= sinceMs) return;
      if (ms < (latestMs.get(line.stream) ?? Number.NEGATIVE_INFINITY)) return;
      latestMs.set(line.stream, ms);
      const held = options.onLine(line);
      if (!held) return;
      if (holds++ === 0) stream.pause();
      held.then(release, release);
    },
    { maxLineBytes: MAX_LOG_LINE_BYTES },
  );
  stream.on('data', (chunk: Buffer) => parser.write(chunk));

  await new Promise<void>((resolve) => {
    const finish = () => {
      options.signal.removeEventListener('abort', abort);
      parser.end();
      resolve();
    };
    const abort = () => stream.destroy();
    options.signal.addEventListener('abort', abort, { once: true });
    if (options.signal.aborted) abort();
    stream.once('end', finish);
    stream.once('close', finish);
    stream.once('error', finish);
  });
}
