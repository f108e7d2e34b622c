import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { customAlphabet } from 'nanoid';
import { BerthError, ForbiddenError, NotFoundError, UnavailableError, errorBody } from '../src/core/errors.ts';

const newRequestId = customAlphabet('0123456789abcdefghijklmnopqrstuvwxyz', 16);

/** Seconds a client is told to wait before retrying a backend that is still starting. */
export const RETRY_AFTER_SECONDS = 5;

export class TokenNotFoundError extends NotFoundError {
  constructor() {
    super('token_not_found', 'no backend answers to this connection token; connect again for a new URL');
  }
}

export class HostMismatchError extends ForbiddenError {
  constructor() {
    super('host_mismatch', 'this connection token belongs to another backend than the one this host names');
  }
}

export class BackendGoneError extends BerthError {
  constructor(backendId: string) {
    super(410, 'gone_error', 'backend_terminated', `backend "${backendId}" has terminated or is terminating; connect again for a new one`, {
      details: { backend_id: backendId },
    });
  }
}

export class BackendNotReadyError extends UnavailableError {
  constructor(backendId: string, waitedMs: number) {
    super('backend_not_ready', `backend "${backendId}" did not become ready within ${Math.round(waitedMs / 100) / 10} s; retry later`, {
      details: { backend_id: backendId },
      headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
    });
  }
}

export class BackendUnreachableError extends BerthError {
  constructor(backendId: string, cause: unknown) {
    super(502, 'bad_gateway_error', 'backend_unreachable', `backend "${backendId}" did not answer: ${(cause as Error).message}`, {
      details: { backend_id: backendId },
      cause,
    });
  }
}

export class ProxyUnavailableError extends UnavailableError {
  constructor(cause: unknown) {
    super('proxy_unavailable', 'the proxy could not look up this connection token; retry later', {
      headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) },
      cause,
    });
  }
}

/**
 * The proxy's own answers are readable from any origin: a page served by a
 * backend on another origin (socket.io reconnecting after termination) must
 * see why, not a CORS failure. They carry no credentials and no backend data.
 */
const CORS_HEADERS = { 'Access-Control-Allow-Origin': '*' };

/**
 * A preflight for a URL the proxy itself answers: allow what is asked, so that
 * the real request is sent and reads the proxy's error.
 */
export function sendPreflight(req: IncomingMessage, res: ServerResponse): void {
  const method = req.headers['access-control-request-method'];
  const headers = req.headers['access-control-request-headers'];
  res.writeHead(204, {
    ...CORS_HEADERS,
    'Access-Control-Allow-Methods': typeof method === 'string' && /^[A-Za-z-]{1,20}$/.test(method) ? method : 'GET, POST, OPTIONS',
    ...(typeof headers === 'string' && /^[A-Za-z0-9, _-]{1,1000}$/.test(headers) ? { 'Access-Control-Allow-Headers': headers } : {}),
    'Access-Control-Max-Age': '600',
    'Content-Length': '0',
  });
  res.end();
}

/** What an error answer was, for the log line. */
export interface ErrorAnswer {
  requestId: string;
  status: number;
  code: string;
}

function render(error: BerthError): { requestId: string; body: string } {
  const requestId = `req_${newRequestId()}`;
  return { requestId, body: JSON.stringify(errorBody(error, requestId)) };
}

/** Answers with berth's JSON error body. */
export function sendError(res: ServerResponse, error: BerthError): ErrorAnswer {
  const { requestId, body } = render(error);
  if (!res.headersSent && !res.destroyed) {
    res.writeHead(error.status, {
      ...error.headers,
      ...CORS_HEADERS,
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(body),
      'X-Request-Id': requestId,
    });
    res.end(body);
  } else {
    res.destroy();
  }
  return { requestId, status: error.status, code: error.code };
}

/** Answers a failed upgrade with a raw HTTP response and destroys the socket once it is written. */
export function sendSocketError(socket: Duplex, error: BerthError): ErrorAnswer {
  const { requestId, body } = render(error);
  if (socket.writable) {
    const headers = {
      ...error.headers,
      ...CORS_HEADERS,
      'Content-Type': 'application/json',
      'Content-Length': String(Buffer.byteLength(body)),
      'X-Request-Id': requestId,
      Connection: 'close',
    };
    const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
    socket.once('finish', () => socket.destroy());
    socket.end(`HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\n${head.join('')}\r\n${body}`);
  } else {
    socket.destroy();
  }
  return { requestId, status: error.status, code: error.code };
}
