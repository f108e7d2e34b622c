import { StringDecoder } from 'node:string_decoder';

/**
 * Newline-delimited text from a byte stream. Chunks may end in the middle of a
 * line or of a multi-byte character; both are kept until the rest arrives.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  /** With `keepBlank`, lines keep their leading spaces and blank lines are passed on (log output). */
  constructor(
    private readonly onLine: (line: string) => void,
    private readonly options: { keepBlank?: boolean } = {},
  ) {}

  write(chunk: Buffer | string): void {
    this.pending += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    let newline: number;
    while ((newline = this.pending.indexOf('\n')) >= 0) {
      const raw = this.pending.slice(0, newline);
      this.pending = this.pending.slice(newline + 1);
      const line = this.options.keepBlank ? raw.replace(/\r$/, '') : raw.trim();
      if (line !== '' || this.options.keepBlank) this.onLine(line);
    }
  }

  /** Passes on a last line that had no newline. */
  end(): void {
    this.pending += this.decoder.end();
    const rest = this.options.keepBlank ? this.pending : this.pending.trim();
    this.pending = '';
    if (rest !== '') this.onLine(rest);
  }
}
