import coBody from 'co-body';
import type { Context } from 'koa';
import { BerthError } from '../core/errors.ts';

/**
 * Writes a JSON response with content type exactly `application/json`:
 * existing Jamsocket clients compare it literally, and Koa would add a charset.
 */
export function sendJson(ctx: Context, value: unknown, status = 200): void {
  ctx.status = status;
  ctx.set('Content-Type', 'application/json');
  ctx.body = JSON.stringify(value);
}

const BODY_LIMIT = '1mb';

/**
 * Reads a JSON request body. An absent or empty body reads as `{}` (every
 * field of berth's request bodies is optional or checked later); a body in
 * another media type is refused rather than silently ignored.
 */
export async function readJsonBody(ctx: Context): Promise<unknown> {
  if (!ctx.request.length && !ctx.get('Transfer-Encoding')) return {};
  const type = ctx.request.type;
  if (type !== '' && !ctx.request.is('json', '+json')) {
    throw new BerthError(415, 'unsupported_media_type_error', 'unsupported_media_type', `request bodies must be application/json, got ${type}`);
  }
  try {
    return await coBody.json(ctx, { limit: BODY_LIMIT, strict: true });
  } catch (error) {
    const status = (error as { status?: number }).status;
    if (status === 413) {
      throw new BerthError(413, 'payload_too_large_error', 'payload_too_large', `request body is larger than ${BODY_LIMIT}`);
    }
    throw new BerthError(400, 'invalid_request_error', 'invalid_json', `request body is not valid JSON: ${(error as Error).message}`, {
      details: { param: 'body' },
      cause: error,
    });
  }
}
