import type { Middleware } from 'koa';
import { customAlphabet } from 'nanoid';
import { isEngineUnreachable } from '../../scheduler/engine.ts';
import { isDatabaseUnavailable } from '../database.ts';
import { BerthError, DatabaseUnavailableError, DockerUnavailableError, errorBody } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { BerthContextExtras, BerthState } from '../context.ts';
import { sendJson } from './json.ts';

const newRequestId = customAlphabet('0123456789abcdefghijklmnopqrstuvwxyz', 16);

export class RouteNotFoundError extends BerthError {
  constructor(method: string, path: string) {
    super(404, 'not_found_error', 'route_not_found', `no route for ${method} ${path}`);
  }
}

/**
 * First in the chain: gives the request an id, turns every error into the one
 * error body, and writes one log line per request. Internals never leak: an
 * error that is not a BerthError becomes an opaque 500 whose id finds the log.
 */
export function handleRequests(logger: Logger): Middleware<BerthState, BerthContextExtras> {
  return async (ctx, next) => {
    const started = performance.now();
    const requestId = `req_${newRequestId()}`;
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    let failure: unknown;
    try {
      await next();
      if (ctx.status === 404 && ctx.body == null && ctx.respond !== false) {
        throw new RouteNotFoundError(ctx.method, ctx.path);
      }
    } catch (error) {
      failure = error;
      const berthError = toBerthError(error);
      if (berthError instanceof DatabaseUnavailableError) ctx.deps.metrics.countOutage('database');
      else if (berthError instanceof DockerUnavailableError) ctx.deps.metrics.countOutage('engine');
      for (const [name, value] of Object.entries(berthError.headers)) ctx.set(name, value);
      sendJson(ctx, errorBody(berthError, requestId), berthError.status);
    }
    const line = {
      request_id: requestId,
      method: ctx.method,
      path: redactedPath(ctx.path),
      status: ctx.status,
      duration_ms: Math.round((performance.now() - started) * 10) / 10,
    };
    if (ctx.status >= 500) logger.error({ ...line, err: failure }, 'request failed');
    else logger.info(line, 'request');
  };
}

/**
 * `ready_url` (`/ready/{backend_id}/{token}`, backends/ready.controller.ts)
 * carries a connection token, a credential: the log gets `[token]` instead.
 * Matched as the router would (any case, repeated slashes), whether or not a
 * route answered, so a malformed URL does not leak it either.
 */
const READY_PATH_TOKEN = /^(\/+ready\/+[^/]*\/+)[^/]+/i;

function redactedPath(path: string): string {
  return path.replace(READY_PATH_TOKEN, '$1[token]');
}

function toBerthError(error: unknown): BerthError {
  if (error instanceof BerthError) return error;
  // Outages map once, here: whatever was being read or written, the answer is "retry soon".
  if (isDatabaseUnavailable(error)) return new DatabaseUnavailableError(error);
  if (isEngineUnreachable(error)) return new DockerUnavailableError(error);
  const status = (error as { status?: unknown }).status;
  const expose = (error as { expose?: unknown }).expose === true;
  // Koa and router errors (405, 501) carry a status and are safe to show.
  if (expose && typeof status === 'number') {
    if (status === 405) {
      return new BerthError(405, 'method_not_allowed_error', 'method_not_allowed', (error as Error).message);
    }
    const type = status === 404 ? 'not_found_error' : status < 500 ? 'invalid_request_error' : 'internal_error';
    return new BerthError(status, type, 'http_error', (error as Error).message);
  }
  return new BerthError(500, 'internal_error', 'internal_error', 'internal error; the request id finds it in the log', {
    cause: error,
  });
}
