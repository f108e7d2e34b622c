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
  // The engine stamps each message (in nanoseconds) as it reads it from the container's pipe, so within one
  // stream times only rise (across stdout and stderr they may interleave out of order). Its json-file follower
  // can hand out lines again when the file rotates under it; those come with the times they had, not later
  // ones, and are dropped. Two different lines stamped in the same nanosecond are both kept.
  const latest = new Map<string, { ms: number; nanos: number; line: string }>();
  const parser = new DockerLogParser(
    ({ time, nanos, stream: name, line: text }) => {
      const ms = time.getTime();
      if (sinceMs !== undefined && ms <= sinceMs) return;
      const last = latest.get(name);
      const order = last ? ms - last.ms || nanos - last.nanos : 1;
      if (order < 0 || (order === 0 && text === last?.line)) return;
      latest.set(name, { ms, nanos, line: text });
      const line = { time, stream: name, line: text };
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
