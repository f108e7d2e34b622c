import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import { LineSplitter } from './line-splitter.ts';

export type LogStreamName = 'stdout' | 'stderr';

export interface LogLine {
  time: Date;
  stream: LogStreamName;
  line: string;
}

export interface FollowLogsOptions {
  /** Only lines written after this time (the last one berth already stored). */
  since?: Date;
  signal: AbortSignal;
  onLine: (line: LogLine) => void;
}

// `docker logs --timestamps` prefixes each line with an RFC 3339 time and a space.
const TIMESTAMPED = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (.*)$/s;

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

  const splitterFor = (name: LogStreamName) => {
    const out = new PassThrough();
    const splitter = new LineSplitter(
      (raw) => {
        const match = TIMESTAMPED.exec(raw);
        const time = match ? new Date(match[1]!) : new Date();
        if (sinceMs !== undefined && time.getTime() <= sinceMs) return;
        options.onLine({ time, stream: name, line: match ? match[2]! : raw });
      },
      { keepBlank: true },
    );
    out.on('data', (chunk: Buffer) => splitter.write(chunk));
    out.on('end', () => splitter.end());
    return out;
  };
  const stdout = splitterFor('stdout');
  const stderr = splitterFor('stderr');
  docker.modem.demuxStream(stream, stdout, stderr);

  await new Promise<void>((resolve) => {
    const finish = () => {
      options.signal.removeEventListener('abort', abort);
      stdout.end();
      stderr.end();
      resolve();
    };
    const abort = () => stream.destroy();
    options.signal.addEventListener('abort', abort, { once: true });
    if (options.signal.aborted) abort();
    stream.on('end', finish);
    stream.on('close', finish);
    stream.on('error', finish);
  });
}
