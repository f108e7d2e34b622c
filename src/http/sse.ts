import type { ServerResponse } from 'node:http';
import type { Context } from 'koa';

const HEARTBEAT_MS = 15_000;

export interface EventStream {
  /** Writes one event in one write: optional `id:` line, then a single `data:` line. */
  send(data: string, id?: number | string): void;
  close(): void;
  readonly closed: boolean;
  /** Called once when the client goes away or the stream is closed. */
  onClose(listener: () => void): void;
}

/**
 * Takes over the response for server-sent events. Each event is one `data:`
 * line (JSON has no raw newlines), LF-framed, in one write: simple clients,
 * the Jamsocket CLI among them, read exactly that.
 */
export function openEventStream(ctx: Context, headers: Record<string, string> = {}): EventStream {
  ctx.respond = false;
  const res: ServerResponse = ctx.res;
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
    'X-Request-Id': ctx.state.requestId as string,
    ...headers,
  });
  res.flushHeaders();
  ctx.req.socket.setNoDelay(true);
  ctx.req.socket.setKeepAlive(true);

  const listeners: Array<() => void> = [];
  let closed = false;
  const finish = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    for (const listener of listeners.splice(0)) listener();
  };
  // A comment line keeps proxies from timing out an idle stream.
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
  res.on('close', finish);
  res.on('error', finish);

  return {
    send(data, id) {
      if (closed) return;
      res.write(`${id === undefined ? '' : `id: ${id}\n`}data: ${data.replace(/[\r\n]+/g, ' ')}\n\n`);
    },
    close() {
      if (!closed) res.end();
      finish();
    },
    get closed() {
      return closed;
    },
    onClose(listener) {
      if (closed) listener();
      else listeners.push(listener);
    },
  };
}
