import { BerthApiError, BerthClientError, type BackendStatus } from '../client/index.ts';

/** A failure the CLI explains itself (bad flag value, ambiguous account, no local image). */
export class CliError extends Error {
  constructor(
    message: string,
    /** Process exit code. */
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Options every client command takes. */
export interface OutputOptions {
  /** Print machine-readable JSON to stdout instead of text. */
  json?: boolean;
}

/** `--json` output is always one JSON value per line, so that `jq`, `grep` and line-by-line readers take it as it is. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** For commands that print as things happen (`status --watch`, `logs`); the same as printJson. */
export const printJsonLine = printJson;

/** A list: one line per item, nothing at all for an empty one. */
export function printJsonLines(values: readonly unknown[]): void {
  for (const value of values) printJson(value);
}

/** `4.2 s`, `1 min 05 s`: how long a wait has lasted so far. */
export function formatElapsed(ms: number): string {
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.floor(seconds);
  return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, '0')} s`;
}

export function printLine(text = ''): void {
  process.stdout.write(`${text}\n`);
}

/** Labelled values, the labels padded to one column. */
export function printFields(fields: Array<[string, string]>): void {
  const width = Math.max(...fields.map(([label]) => label.length));
  for (const [label, value] of fields) printLine(`${label.padEnd(width)}  ${value}`);
}

/** A table with a header row; an empty one prints `empty` instead. */
export function printTable(headers: string[], rows: string[][], empty: string): void {
  if (rows.length === 0) {
    printLine(empty);
    return;
  }
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)));
  const format = (cells: string[]) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd();
  printLine(format(headers));
  for (const row of rows) printLine(format(row));
}

/** `terminated (external, hard, exit error)`: the status and what it carries. */
export function describeStatus(status: BackendStatus): string {
  const facts = [status.termination_reason, status.termination_kind, status.exit_error ? 'exit error' : undefined].filter(Boolean);
  return facts.length > 0 ? `${status.status} (${facts.join(', ')})` : status.status;
}

/** `2025-01-01T12:00:00.000Z  ready`: one line per status, as `status --watch` prints them without a TTY. */
export function statusLine(status: BackendStatus): string {
  return `${status.time}  ${describeStatus(status)}`;
}

const SPINNER_FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const SPINNER_INTERVAL_MS = 80;

/** A one-line spinner on a TTY showing the time since it started: `update` changes its text, `stop` replaces it with a final line. */
export class Spinner {
  private frame = 0;
  private text = '';
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt = performance.now();

  constructor(private readonly stream: NodeJS.WriteStream = process.stdout) {}

  start(text: string): void {
    this.text = text;
    this.render();
    this.timer ??= setInterval(() => {
      this.frame = (this.frame + 1) % SPINNER_FRAMES.length;
      this.render();
    }, SPINNER_INTERVAL_MS);
  }

  update(text: string): void {
    this.text = text;
    this.render();
  }

  /** Clears the spinner line; prints `finalLine` in its place when given. Idempotent. */
  stop(finalLine?: string): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.stream.write('\r\x1b[K');
    if (finalLine !== undefined) this.stream.write(`${finalLine}\n`);
  }

  /** Time since the spinner was made. */
  get elapsed(): string {
    return formatElapsed(performance.now() - this.startedAt);
  }

  private render(): void {
    this.stream.write(`\r\x1b[K${SPINNER_FRAMES[this.frame]} ${this.text} · ${this.elapsed}`);
  }
}

/**
 * Prints a failure to stderr and returns the exit code. berth's own errors
 * show the server's message, code and request id (which finds the log line).
 */
export function reportError(error: unknown): number {
  if (error instanceof CliError) {
    process.stderr.write(`berth: ${error.message}\n`);
    return error.exitCode;
  }
  if (error instanceof BerthApiError) {
    const facts = [`code ${error.code}`];
    const param = error.details?.param;
    if (typeof param === 'string') facts.push(`param ${param}`);
    if (error.requestId) facts.push(`request ${error.requestId}`);
    process.stderr.write(`berth: ${error.message} (${facts.join(', ')})\n`);
    if (error.status === 401) process.stderr.write('berth: set BERTH_TOKEN, or run `berth login --url <url> --token <token>`\n');
    return 1;
  }
  // Connection failures, broken streams, timeouts: the message says it all.
  if (error instanceof BerthClientError) {
    process.stderr.write(`berth: ${error.message}\n`);
    return 1;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`berth: ${message}\n`);
  if (error instanceof Error && error.cause) process.stderr.write(`${String(error.cause)}\n`);
  return 1;
}
