import { ValidationError } from '../core/errors.ts';

const MAX_AUTH_BYTES = 4096;
/** Deeper than any real claim set; deep enough values would overflow the stack of JSON.stringify. */
const MAX_AUTH_DEPTH = 32;

/**
 * Checks connect's `auth` before anything serializes it: it travels as JSON in
 * the x-verified-user-data header and is stored in PostgreSQL, which refuses
 * NUL characters in text. Walks the value without recursion, so that no input
 * can overflow the stack.
 */
export function checkAuth(auth: Record<string, unknown> | undefined): Record<string, unknown> | null {
  if (auth === undefined) return null;
  const stack: Array<{ value: unknown; depth: number; path: string }> = [{ value: auth, depth: 1, path: 'body.auth' }];
  while (stack.length > 0) {
    const { value, depth, path } = stack.pop()!;
    if (typeof value === 'string') {
      if (value.includes('\u0000')) throw new ValidationError(path, `"${path}" may not contain NUL characters`);
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    if (depth > MAX_AUTH_DEPTH) throw new ValidationError(path, `"body.auth" may nest at most ${MAX_AUTH_DEPTH} levels deep`);
    for (const [name, child] of Object.entries(value)) {
      const childPath = `${path}.${name}`;
      if (name.includes('\u0000')) throw new ValidationError(path, `"${path}" may not have names with NUL characters`);
      stack.push({ value: child, depth: depth + 1, path: childPath.length > 200 ? path : childPath });
    }
  }
  if (Buffer.byteLength(JSON.stringify(auth)) > MAX_AUTH_BYTES) {
    throw new ValidationError('body.auth', `"body.auth" must serialize to at most ${MAX_AUTH_BYTES} bytes of JSON (it travels in a header)`);
  }
  return auth;
}
