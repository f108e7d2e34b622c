import { LineSplitter } from '../line-splitter.ts';

export interface ParsedLogLine {
  /** When the line's first piece was written, by the engine's clock. */
  time: Date;
  /** The nanoseconds of that time past its millisecond (the engine stamps in nanoseconds; a Date keeps milliseconds). */
  nanos: number;
  stream: 'stdout' | 'stderr';
  line: string;
}

export interface DockerLogParserOptions {
  /** Bytes of a line that are kept; the rest is replaced by a marker naming how many were cut. */
  maxLineBytes: number;
}

/** The engine's RFC 3339 time with nanoseconds and a space, at most this long. */
const MAX_TIMESTAMP_BYTES = 40;
const SPACE = 0x20;
const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$/;
const INLINE_TIMESTAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) (.*)$/s;
const HEADER_BYTES = 8;

/** An engine timestamp as a Date and the nanoseconds past its millisecond. */
function engineTime(stamp: string): { time: Date; nanos: number } {
  const fraction = /\.(\d+)/.exec(stamp)?.[1] ?? '';
  return { time: new Date(stamp), nanos: Number(fraction.padEnd(9, '0').slice(3, 9)) };
}

/**
 * The output of `docker logs --follow --timestamps` (the multiplexed form: an
 * 8-byte header, then the payload) turned into lines. The engine cuts lines
 * longer than 16 KiB into partial messages and gives each its own frame with
 * its own timestamp; each frame's timestamp is taken off before its bytes join
 * the line, so a long line comes out whole (up to `maxLineBytes`, then a
 * marker) with no timestamp inside it. Invalid UTF-8 becomes U+FFFD (NUL
 * bytes are the store's to replace: see storableText).
 */
export class DockerLogParser {
  private readonly streams: Record<'stdout' | 'stderr', FrameLines>;
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private headerFill = 0;
  private frameLeft = 0;
  private frameStream: FrameLines | undefined;
  /** Set when the stream turned out not to be multiplexed (a container with a TTY): lines carry their timestamps inline. */
  private raw = false;

  constructor(onLine: (line: ParsedLogLine) => void, options: DockerLogParserOptions) {
    this.streams = {
      stdout: new FrameLines('stdout', onLine, options.maxLineBytes),
      stderr: new FrameLines('stderr', onLine, options.maxLineBytes),
    };
  }

  write(chunk: Buffer): void {
    if (this.raw) return this.streams.stdout.rawData(chunk);
    let at = 0;
    while (at < chunk.length) {
      if (this.frameLeft === 0) {
        const take = Math.min(HEADER_BYTES - this.headerFill, chunk.length - at);
        chunk.copy(this.header, this.headerFill, at, at + take);
        this.headerFill += take;
        at += take;
        if (this.headerFill < HEADER_BYTES) return;
        this.headerFill = 0;
        const type = this.header[0];
        if ((type !== 1 && type !== 2) || this.header.readUIntBE(1, 3) !== 0) {
          this.raw = true;
          this.streams.stdout.rawData(Buffer.concat([this.header, chunk.subarray(at)]));
          return;
        }
        this.frameLeft = this.header.readUInt32BE(4);
        this.frameStream = type === 1 ? this.streams.stdout : this.streams.stderr;
        this.frameStream.startFrame();
        continue;
      }
      const take = Math.min(this.frameLeft, chunk.length - at);
      this.frameStream!.frameData(chunk.subarray(at, at + take));
      this.frameLeft -= take;
      at += take;
    }
  }

  /** Passes on what is left: a line that never got its newline. */
  end(): void {
    this.streams.stdout.end();
    this.streams.stderr.end();
  }
}

/** One stream's frames: each starts with a timestamp, their remaining bytes form lines. */
class FrameLines {
  private readonly splitter: LineSplitter;
  private frameTime = { time: new Date(), nanos: 0 };
  private lineTime = this.frameTime;
  /** The start of the current frame while its timestamp is not yet complete. */
  private pendingTimestamp: Buffer | undefined;
  private inlineTimestamps = false;

  constructor(
    private readonly stream: 'stdout' | 'stderr',
    private readonly onLine: (line: ParsedLogLine) => void,
    maxLineBytes: number,
  ) {
    this.splitter = new LineSplitter((line, dropped) => this.emit(line, dropped), { keepBlank: true, maxLineBytes });
  }

  startFrame(): void {
    this.pendingTimestamp = Buffer.alloc(0);
  }

  frameData(bytes: Buffer): void {
    if (this.pendingTimestamp === undefined) return this.content(bytes);
    const head = Buffer.concat([this.pendingTimestamp, bytes]);
    const space = head.indexOf(SPACE);
    if (space === -1 && head.length < MAX_TIMESTAMP_BYTES) {
      this.pendingTimestamp = head;
      return;
    }
    this.pendingTimestamp = undefined;
    const stamp = space === -1 ? undefined : head.toString('latin1', 0, space);
    if (stamp !== undefined && TIMESTAMP.test(stamp)) {
      this.frameTime = engineTime(stamp);
      this.content(head.subarray(space + 1));
    } else {
      // Not the engine's timestamp after all: the bytes are the line's.
      this.frameTime = { time: new Date(), nanos: 0 };
      this.content(head);
    }
  }

  rawData(bytes: Buffer): void {
    this.inlineTimestamps = true;
    this.content(bytes);
  }

  end(): void {
    this.splitter.end();
  }

  private content(bytes: Buffer): void {
    if (bytes.length === 0) return;
    if (!this.splitter.midLine) this.lineTime = this.frameTime;
    this.splitter.write(bytes);
  }

  private emit(text: string, dropped: number): void {
    let time = this.lineTime;
    this.lineTime = this.frameTime;
    if (this.inlineTimestamps) {
      const match = INLINE_TIMESTAMP.exec(text);
      time = match ? engineTime(match[1]!) : { time: new Date(), nanos: 0 };
      if (match) text = match[2]!;
    }
    this.onLine({ ...time, stream: this.stream, line: dropped > 0 ? `${text} … [truncated ${dropped} bytes]` : text });
  }
}
