/**
 * Errors that reach clients. Services throw the small named subclasses below;
 * the request handler (http/request-handler.ts) turns any BerthError into the
 * error body of DESIGN.md, and anything else into an opaque 500.
 */
export const ERROR_TYPES = [
  'invalid_request_error',
  'authentication_error',
  'forbidden_error',
  'not_found_error',
  'method_not_allowed_error',
  'conflict_error',
  'gone_error',
  'payload_too_large_error',
  'unsupported_media_type_error',
  'rate_limit_error',
  'internal_error',
  'bad_gateway_error',
  'unavailable_error',
] as const;
export type ErrorType = (typeof ERROR_TYPES)[number];

export type ErrorDetails = Record<string, unknown>;

export interface BerthErrorOptions {
  details?: ErrorDetails;
  headers?: Record<string, string>;
  cause?: unknown;
}

export class BerthError extends Error {
  readonly details: ErrorDetails | undefined;
  readonly headers: Record<string, string>;

  constructor(
    readonly status: number,
    readonly type: ErrorType,
    readonly code: string,
    message: string,
    options: BerthErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.details = options.details;
    this.headers = options.headers ?? {};
  }
}

/** Bad input; `param` names the field at fault (dotted path for nested fields). */
export class ValidationError extends BerthError {
  constructor(param: string, message: string, code = 'invalid_parameter') {
    super(400, 'invalid_request_error', code, message, { details: { param } });
  }
}

export class UnauthorizedError extends BerthError {
  constructor(code: string, message: string) {
    super(401, 'authentication_error', code, message, {
      headers: { 'WWW-Authenticate': 'Bearer realm="berth"' },
    });
  }
}

export class ForbiddenError extends BerthError {
  constructor(code: string, message: string) {
    super(403, 'forbidden_error', code, message);
  }
}

export class NotFoundError extends BerthError {
  constructor(code: string, message: string, details?: ErrorDetails) {
    super(404, 'not_found_error', code, message, { details });
  }
}

export class ConflictError extends BerthError {
  constructor(code: string, message: string, details?: ErrorDetails) {
    super(409, 'conflict_error', code, message, { details });
  }
}

export class UnavailableError extends BerthError {
  constructor(code: string, message: string, options: BerthErrorOptions = {}) {
    super(503, 'unavailable_error', code, message, options);
  }
}

/** No Docker engine answered; nothing was written. */
export class DockerUnavailableError extends UnavailableError {
  constructor(cause: unknown) {
    super('docker_unavailable', 'the Docker engine is not reachable', { cause, headers: { 'Retry-After': '5' } });
  }
}

/** The database did not answer; nothing was written. */
export class DatabaseUnavailableError extends UnavailableError {
  constructor(cause: unknown) {
    super('database_unavailable', 'the database is not reachable right now; retry shortly', { cause, headers: { 'Retry-After': '2' } });
  }
}

export interface ErrorBody {
  error: {
    message: string;
    type: ErrorType;
    code: string;
    status: number;
    id: string;
    details?: ErrorDetails;
  };
}

export function errorBody(error: BerthError, requestId: string): ErrorBody {
  return {
    error: {
      message: error.message,
      type: error.type,
      code: error.code,
      status: error.status,
      id: requestId,
      ...(error.details ? { details: error.details } : {}),
    },
  };
}
