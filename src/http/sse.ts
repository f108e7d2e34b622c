import type { ServerResponse } from 'node:http';
import type { Context } from 'koa';

const HEARTBEAT_MS = 15_000;
/**
 * What one stream may hold for a client that does not read. Streams that can
 * wait (logs) stop producing long before; a stream fed by events (status,
 * metrics) drops its client here rather than grow.
 */
export const MAX_BUFFERED_BYTES = 1024 * 1024;

export interface EventStream {
  /**
   * Writes one event in one write: optional `id:` line, then a single `data:`
   * line. False once the client is behind: wait for `drained()` before sending
   * more. A client that lets MAX_BUFFERED_BYTES pile up is dropped.
   */
  send(data: string, id?: number | string): boolean;
  /** Resolves once what was sent has gone to the client, or the stream is closed. */
  drained(): Promise<void>;
  close(): void;
  readonly closed: boolean;
  /** Called once when the client goes away or the stream is closed. */
  onClose(listener: () => void): void;
}

const open = new Set<ServerResponse>();

/** Streams open in this process and what they hold for their clients: how a stalled reader shows. */
export function eventStreamBuffers(): { streams: number; bufferedBytes: number } {
  let bufferedBytes = 0;
  for (const res of open) bufferedBytes += res.writableLength;
  return { streams: open.size, bufferedBytes };
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
  open.add(res);
  const finish = () => {
    if (closed) return;
    closed = true;
    open.delete(res);
    clearInterval(heartbeat);
    for (const listener of listeners.splice(0)) listener();
  };
  // A comment line keeps proxies from timing out an idle stream.
  const heartbeat = setInterval(() => write(': keep-alive\n\n'), HEARTBEAT_MS);
  res.on('close', finish);
  res.on('error', finish);
  const write = (text: string): boolean => {
    if (closed) return false;
    if (res.writableLength + text.length > MAX_BUFFERED_BYTES) {
      // Not reading for this long is gone, as far as this stream can tell.
      res.destroy();
      finish();
      return false;
    }
    return res.write(text);
  };

  return {
    send(data, id) {
      return write(`${id === undefined ? '' : `id: ${id}\n`}data: ${data.replace(/[\r\n]+/g, ' ')}\n\n`);
    },
    drained() {
      if (closed || !res.writableNeedDrain) return Promise.resolve();
      return new Promise((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
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
