export interface LineSplitterOptions {
  /** Lines keep their leading spaces and blank lines are passed on (log output). Default false: lines are trimmed, blank ones skipped. */
  keepBlank?: boolean;
  /**
   * Bytes of one line that are kept; the rest is only counted, so a line of
   * any length costs this much memory. Default: no limit.
   */
  maxLineBytes?: number;
}

const NEWLINE = 0x0a;

/**
 * Newline-delimited text from a byte stream. Chunks may end in the middle of a
 * line or of a multi-byte character; both are kept until the rest arrives.
 * Each byte is looked at once, however long the line, and invalid UTF-8
 * becomes U+FFFD.
 */
export class LineSplitter {
  private readonly maxLineBytes: number;
  /** The kept start of the current line, copied out of the chunks it came in. */
  private parts: Buffer[] = [];
  private kept = 0;
  private dropped = 0;

  /** `droppedBytes` is how much of the line was cut off past `maxLineBytes` (0 when none). */
  constructor(
    private readonly onLine: (line: string, droppedBytes: number) => void,
    private readonly options: LineSplitterOptions = {},
  ) {
    this.maxLineBytes = options.maxLineBytes ?? Infinity;
  }

  /** True once part of a line has arrived without its newline. */
  get midLine(): boolean {
    return this.kept > 0 || this.dropped > 0;
  }

  write(chunk: Buffer | string): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let start = 0;
    for (;;) {
      const newline = bytes.indexOf(NEWLINE, start);
      if (newline === -1) {
        this.keep(bytes, start, bytes.length);
        return;
      }
      if (!this.midLine && newline - start <= this.maxLineBytes) this.emit(bytes.subarray(start, newline), 0);
      else {
        this.keep(bytes, start, newline);
        this.flush();
      }
      start = newline + 1;
    }
  }

  /** Passes on a last line that had no newline. */
  end(): void {
    if (this.midLine) this.flush();
  }

  private keep(bytes: Buffer, start: number, end: number): void {
    const take = Math.max(0, Math.min(end - start, this.maxLineBytes - this.kept));
    // A copy: a subarray would hold on to the whole chunk for a few bytes of it.
    if (take > 0) this.parts.push(Buffer.from(bytes.subarray(start, start + take)));
    this.kept += take;
    this.dropped += end - start - take;
  }

  private flush(): void {
    let line = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.kept);
    let dropped = this.dropped;
    this.parts = [];
    this.kept = 0;
    this.dropped = 0;
    if (dropped > 0) {
      // A cut inside a multi-byte character drops the whole character rather than leaving half of it.
      const cut = completeCharactersEnd(line);
      dropped += line.length - cut;
      line = line.subarray(0, cut);
    }
    this.emit(line, dropped);
  }

  private emit(bytes: Buffer, dropped: number): void {
    let line = bytes.toString('utf8');
    if (this.options.keepBlank) {
      if (line.endsWith('\r')) line = line.slice(0, -1);
    } else {
      line = line.trim();
      if (line === '') return;
    }
    this.onLine(line, dropped);
  }
}

/** Length of `bytes` without a multi-byte UTF-8 character that is missing its last bytes. */
function completeCharactersEnd(bytes: Buffer): number {
  for (let i = bytes.length - 1; i >= 0 && i >= bytes.length - 4; i--) {
    const byte = bytes[i]!;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: the lead is further back
    const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return i + length > bytes.length ? i : bytes.length;
  }
  return bytes.length;
}
