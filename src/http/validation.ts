import { z } from 'zod';
import { ValidationError } from '../core/errors.ts';

/** Lowercase DNS-label-like names for accounts, services and environments. */
export const NAME = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be 1-63 lowercase letters, digits or "-", starting and ending with a letter or digit');

/**
 * Parses input against a schema, turning the first problem into a 400 that
 * names the field at fault as a dotted path below `root`.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, root: string): z.output<S> {
  // Without reportInput zod leaves `issue.input` unset, and a value of the wrong
  // type (say, an array for `auth`) would be reported as missing.
  const result = schema.safeParse(input, { reportInput: true });
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = [...issue.path];
  if (issue.code === 'unrecognized_keys') path.push(issue.keys[0] ?? '');
  const param = [root, ...path.map(String)].filter(Boolean).join('.');
  const message =
    issue.code === 'unrecognized_keys'
      ? `unknown field "${param}"`
      : issue.code === 'invalid_type' && issue.input === undefined
        ? `"${param}" is required`
        : `"${param}" ${lowerFirst(issue.message)}`;
  throw new ValidationError(param, message);
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/** A name from the path (account, service, environment), validated like one in a body. */
export function nameParam(params: Record<string, string | undefined>, param: string): string {
  return parseInput(NAME, params[param], param);
}
