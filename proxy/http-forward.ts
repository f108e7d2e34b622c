import http, { type IncomingMessage, type ServerResponse } from 'node:http';

/** Where one request goes: the backend's published port on its node's address, and the path it sees. */
export interface HttpTarget {
  host: string;
  port: number;
  path: string;
  agent: http.Agent;
}

/**
 * Forwards one request and streams both bodies through; nothing is buffered.
 * `onError` hears a failure only while nothing has been answered yet; later
 * failures cut the client's connection, the only honest signal left.
 */
export function forwardHttp(req: IncomingMessage, res: ServerResponse, target: HttpTarget, onError: (error: Error) => void): void {
  send(req, res, target, onError, true);
}

function send(req: IncomingMessage, res: ServerResponse, target: HttpTarget, onError: (error: Error) => void, mayRetry: boolean): void {
  const bodied = hasBody(req);
  const proxyReq = http.request({
    host: target.host,
    port: target.port,
    method: req.method,
    path: target.path,
    headers: req.headers,
    agent: target.agent,
  });

  proxyReq.on('response', (proxyRes) => {
    const headers = proxyRes.headers;
    // Hop-by-hop: this connection's framing is Node's to choose.
    delete headers.connection;
    delete headers['keep-alive'];
    delete headers['transfer-encoding'];
    res.writeHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, headers);
    proxyRes.pipe(res);
    proxyRes.on('close', () => {
      if (!proxyRes.complete) res.destroy();
    });
  });

  proxyReq.on('error', (error: NodeJS.ErrnoException) => {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    // A kept-alive connection the backend closed just as it was reused: nothing
    // reached the app, so a request without a body is safely sent again, once.
    if (mayRetry && !bodied && proxyReq.reusedSocket && error.code === 'ECONNRESET') {
      send(req, res, target, onError, false);
      return;
    }
    onError(error);
  });

  res.on('close', () => {
    if (!res.writableFinished) proxyReq.destroy();
  });

  if (bodied) {
    req.pipe(proxyReq);
    req.on('error', () => proxyReq.destroy());
  } else {
    proxyReq.end();
  }
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}
