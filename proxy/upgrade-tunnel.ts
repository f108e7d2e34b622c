import http, { type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** After one side of a tunnel is gone, how long the other may take to flush before it is cut. */
const CLOSE_GRACE_MS = 1_000;

/**
 * Relays an upgrade (WebSocket) request to the backend, then joins the two
 * sockets. When either side closes the other is ended, and when either fails
 * the other is destroyed: no half of a tunnel outlives the other for long.
 * `onError` hears a failure only before the backend answered.
 */
export function tunnelUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  target: { host: string; port: number; path: string },
  onError: (error: Error) => void,
): void {
  let answered = false;
  // Dropped once the backend answers: a tunnel lives for hours, and what the request needed must not live with it.
  let failed: ((error: Error) => void) | undefined = onError;
  // Upgraded connections are never reused, so they get no pooled agent.
  const proxyReq = http.request({ host: target.host, port: target.port, method: req.method, path: target.path, headers: req.headers, agent: false });
  const onClientClose = () => proxyReq.destroy();
  socket.once('close', onClientClose);
  const settle = () => {
    answered = true;
    failed = undefined;
    socket.off('close', onClientClose);
  };

  proxyReq.once('upgrade', (proxyRes, proxySocket, proxyHead) => {
    settle();
    socket.write(statusAndHeaders(`HTTP/1.1 101 ${proxyRes.statusMessage || 'Switching Protocols'}`, proxyRes.rawHeaders));
    if (proxyHead.length > 0) socket.write(proxyHead);
    if (head.length > 0) proxySocket.write(head);
    join(socket, proxySocket);
  });

  // The app answered without upgrading (a 404, a 401): relay that answer and close.
  proxyReq.once('response', (proxyRes) => {
    settle();
    socket.write(statusAndHeaders(`HTTP/${proxyRes.httpVersion} ${proxyRes.statusCode} ${proxyRes.statusMessage}`, proxyRes.rawHeaders));
    proxyRes.pipe(socket);
    proxyRes.on('close', () => {
      if (!proxyRes.complete) socket.destroy();
    });
  });

  proxyReq.on('error', (error) => {
    if (answered) socket.destroy();
    else failed?.(error);
  });
  proxyReq.end();
}

function join(client: Duplex, backend: Socket): void {
  for (const s of [client, backend] as Array<Duplex & Partial<Socket>>) {
    s.setNoDelay?.(true);
    s.setTimeout?.(0);
  }
  const closeOther = (other: Duplex) => () => {
    if (other.destroyed) return;
    other.end();
    setTimeout(() => other.destroy(), CLOSE_GRACE_MS).unref();
  };
  const destroyBoth = () => {
    client.destroy();
    backend.destroy();
  };
  client.on('error', destroyBoth);
  backend.on('error', destroyBoth);
  client.on('close', closeOther(backend));
  backend.on('close', closeOther(client));
  backend.pipe(client);
  client.pipe(backend);
}

function statusAndHeaders(statusLine: string, rawHeaders: string[]): string {
  let head = `${statusLine}\r\n`;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) head += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  return `${head}\r\n`;
}
