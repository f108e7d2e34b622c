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
