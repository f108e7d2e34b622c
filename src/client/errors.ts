import type { BackendStatus, ErrorBody } from './types.ts';

/** Base of every error the client throws on its own account. */
export class BerthClientError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * berth answered with an error. `message`, `type`, `code`, `details` and
 * `requestId` are the server's own (`{"error":{…}}`); an answer that is not
 * berth's error body (say, a proxy's HTML page) gets `type` "unknown" and
 * `code` "http_<status>".
 */
export class BerthApiError extends BerthClientError {
  readonly status: number;
  readonly type: string;
  readonly code: string;
  /** The request id berth logged the failure under; null when the answer had none. */
  readonly requestId: string | null;
  readonly details: Record<string, unknown> | undefined;
  /** Seconds from the Retry-After header (429, 503), when there was one. */
  readonly retryAfterSeconds: number | undefined;

  constructor(init: {
    status: number;
    type: string;
    code: string;
    message: string;
    requestId: string | null;
    details?: Record<string, unknown>;
    retryAfterSeconds?: number;
  }) {
    super(init.message);
    this.status = init.status;
    this.type = init.type;
    this.code = init.code;
    this.requestId = init.requestId;
    this.details = init.details;
    this.retryAfterSeconds = init.retryAfterSeconds;
  }

  /** Reads an error answer; consumes the body. */
  static async fromResponse(response: Response): Promise<BerthApiError> {
    const text = await response.text().catch(() => '');
    const retryAfter = Number(response.headers.get('retry-after'));
    const common = {
      status: response.status,
      requestId: response.headers.get('x-request-id'),
      ...(Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterSeconds: retryAfter } : {}),
    };
    const body = parseErrorBody(text);
    if (body) {
      return new BerthApiError({
        ...common,
        status: body.error.status || response.status,
        type: body.error.type,
        code: body.error.code,
        message: body.error.message,
        requestId: body.error.id || common.requestId,
        ...(body.error.details ? { details: body.error.details } : {}),
      });
    }
    const excerpt = text.trim().replace(/\s+/g, ' ').slice(0, 200);
    return new BerthApiError({
      ...common,
      type: 'unknown',
      code: `http_${response.status}`,
      message: `HTTP ${response.status} ${response.statusText}${excerpt ? `: ${excerpt}` : ''}`,
    });
  }
}

function parseErrorBody(text: string): ErrorBody | undefined {
  try {
    const value = JSON.parse(text) as Partial<ErrorBody>;
    const error = value?.error;
    if (error && typeof error.message === 'string' && typeof error.code === 'string' && typeof error.type === 'string') return value as ErrorBody;
  } catch {
    // Not JSON: handled by the caller.
  }
  return undefined;
}

/** berth could not be reached at all (refused, reset, DNS): no answer to read. */
export class BerthConnectionError extends BerthClientError {
  constructor(
    readonly url: string,
    cause: unknown,
  ) {
    const reason = (cause as { cause?: { code?: string; message?: string } })?.cause;
    super(`could not reach berth at ${url}: ${reason?.code ?? reason?.message ?? (cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

/** `waitUntilReady`: the backend went past `ready` (terminating or terminated) without becoming ready. */
export class BackendTerminatedError extends BerthClientError {
  constructor(
    readonly backendId: string,
    /** The status that settled it, with its termination reason when there is one. */
    readonly status: BackendStatus,
  ) {
    const why = [status.termination_reason, status.exit_error ? 'exit error' : undefined].filter(Boolean).join(', ');
    super(`backend "${backendId}" is ${status.status}${why ? ` (${why})` : ''} and will not become ready`);
  }
}

export class BerthTimeoutError extends BerthClientError {
  constructor(
    message: string,
    readonly timeoutMs: number,
  ) {
    super(message);
  }
}

/** True when `error` is berth's answer with this error code. */
export function hasErrorCode(error: unknown, code: string): error is BerthApiError {
  return error instanceof BerthApiError && error.code === code;
}

/** `409 BackendNotRunning`: the backend has already terminated (terminate, metrics). */
export const isBackendNotRunning = (error: unknown): error is BerthApiError => hasErrorCode(error, 'BackendNotRunning');
/** `404 backend_not_found`. */
export const isBackendNotFound = (error: unknown): error is BerthApiError => hasErrorCode(error, 'backend_not_found');
/** `404 service_not_found`. */
export const isServiceNotFound = (error: unknown): error is BerthApiError => hasErrorCode(error, 'service_not_found');
/** `409 service_exists`. */
export const isServiceExists = (error: unknown): error is BerthApiError => hasErrorCode(error, 'service_exists');
/** `404 no_backend_for_key`: connect with `spawn: false` and nothing holds the key. */
export const isNoBackendForKey = (error: unknown): error is BerthApiError => hasErrorCode(error, 'no_backend_for_key');
/** Any 404. */
export const isNotFound = (error: unknown): error is BerthApiError => error instanceof BerthApiError && error.status === 404;
