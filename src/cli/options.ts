import { InvalidArgumentError, type Command } from 'commander';

/** `--json`, which every client command takes. */
export function withJson(command: Command): Command {
  return command.option('--json', 'print machine-readable JSON to stdout');
}

/** `--account`, for commands that act inside one account. */
export function withAccount(command: Command): Command {
  return command.option('--account <account>', "the account to act in (default: the token's only account, from GET /auth)");
}

/** Parses a whole number of seconds greater than zero. */
export function parseSeconds(value: string): number {
  const seconds = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(seconds) || seconds <= 0) {
    throw new InvalidArgumentError('must be a whole number of seconds greater than 0');
  }
  return seconds;
}

/** Collects a repeatable `KEY=VALUE` option into an object. */
export function collectKeyValue(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const equals = value.indexOf('=');
  if (equals <= 0) throw new InvalidArgumentError('must be KEY=VALUE');
  return { ...previous, [value.slice(0, equals)]: value.slice(equals + 1) };
}

/** Parses a JSON object (connect's `--auth`). */
export function parseJsonObject(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`must be JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidArgumentError('must be a JSON object');
  return parsed as Record<string, unknown>;
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

/** Parses `536870912`, `512m`, `512MiB` or `1g` (binary units, as Docker's `--memory`) into bytes. */
export function parseBytes(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = match ? BYTE_UNITS[match[2]!.toLowerCase()] : undefined;
  const bytes = match && unit !== undefined ? Math.round(Number(match[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new InvalidArgumentError('must be a size such as 512m, 1g or a number of bytes');
  return bytes;
}

/** Parses a percentage greater than zero (`50`, `150`, `12.5`). */
export function parsePercent(value: string): number {
  const percent = Number(value.replace(/%$/, ''));
  if (!/^\d+(?:\.\d+)?%?$/.test(value) || !(percent > 0)) throw new InvalidArgumentError('must be a percentage greater than 0, such as 50');
  return percent;
}
