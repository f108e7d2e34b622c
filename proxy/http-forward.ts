import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';

/** Where one request goes: the backend's published port on its node's address, and the path it sees. */
export interface HttpTarget {
  host: string;
  port: number;
  path: string;
  /** undici's Agent: a keep-alive pool per backend address. */
  dispatcher: Dispatcher;
}

/** What a reason phrase may not hold (RFC 9112: HTAB, SP, VCHAR, obs-text). */
const INVALID_REASON = /[^\t\x20-\x7e\x80-\xff]/;

/** Methods that change nothing: sent again, once, when a kept-alive connection turns out closed before any answer. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Forwards one request and streams both bodies through; nothing is buffered.
 * undici's dispatcher (rather than http.request and pipes) is the lean path:
 * each response chunk goes straight to the client, paused while the client's
 * socket is full. `onError` hears a failure only while nothing has been
 * answered yet; later failures cut the client's connection, the only honest
 * signal left.
 */
export function forwardHttp(req: IncomingMessage, res: ServerResponse, target: HttpTarget, onError: (error: Error) => void): void {
  send(req, res, target, onError, true);
}

function send(req: IncomingMessage, res: ServerResponse, target: HttpTarget, onError: (error: Error) => void, mayRetry: boolean): void {
  const bodied = hasBody(req);
  let started = false;
  let controller: Dispatcher.DispatchController | undefined;
  const onClose = () => {
    if (!res.writableFinished) controller?.abort(new Error('the client went away'));
  };
  res.once('close', onClose);
  target.dispatcher.dispatch(
    {
      origin: `http://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`,
      path: target.path,
      method: req.method ?? 'GET',
      headers: outgoingHeaders(req),
      body: bodied ? req : null,
      // The app decides how long an answer takes (long polls, event streams): no timeouts of berth's own.
      headersTimeout: 0,
      bodyTimeout: 0,
    },
    {
      onRequestStart(requestController) {
        controller = requestController;
        if (res.destroyed) requestController.abort(new Error('the client went away'));
      },
      onResponseStart(_controller, statusCode, headers, statusMessage) {
        if (statusCode < 200) return; // 1xx: Node answers the client's own Expect, nothing else is forwarded.
        // Hop-by-hop: this connection's framing is Node's to choose.
        delete headers.connection;
        delete headers['keep-alive'];
        delete headers['transfer-encoding'];
        const outgoing = headers as Record<string, string | string[]>;
        // undici reads the reason phrase as UTF-8 (header values as latin1): back to the bytes it came
        // as, so that it goes out unchanged; one Node would refuse gets Node's default instead.
        const reason = statusMessage ? Buffer.from(statusMessage, 'utf8').toString('latin1') : '';
        if (reason !== '' && !INVALID_REASON.test(reason)) res.writeHead(statusCode, reason, outgoing);
        else res.writeHead(statusCode, outgoing);
        started = true;
      },
      onResponseData(responseController, chunk) {
        if (!res.write(chunk)) {
          responseController.pause();
          res.once('drain', () => responseController.resume());
        }
      },
      onResponseEnd() {
        res.off('close', onClose);
        res.end();
      },
      onResponseError(_controller, error) {
        res.off('close', onClose);
        if (started || res.headersSent || res.destroyed) {
          res.destroy();
          return;
        }
        // A kept-alive connection the backend closed just as it was reused: nothing reached the
        // app, so a safe request without a body is sent again, once.
        if (mayRetry && !bodied && SAFE_METHODS.has(req.method ?? '') && isClosedSocket(error)) {
          send(req, res, target, onError, false);
          return;
        }
        onError(error);
      },
    },
  );
}

/** The request's headers as undici takes them: framing headers are its own to write. */
function outgoingHeaders(req: IncomingMessage): Record<string, string | string[]> {
  const headers = req.headers as Record<string, string | string[] | undefined>;
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name === 'transfer-encoding' || name === 'expect') continue;
    out[name] = value;
  }
  return out;
}

function isClosedSocket(error: Error & { code?: string }): boolean {
  return error.code === 'UND_ERR_SOCKET' || error.code === 'ECONNRESET';
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}
