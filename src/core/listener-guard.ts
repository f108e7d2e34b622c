import http, { type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { customAlphabet } from 'nanoid';

/** What one listener lets a client hold. Both of berth's listeners take the same limits. */
export interface ListenerLimits {
  /** A client must have sent its whole request head within this (BERTH_HEADER_TIMEOUT_SECONDS, default 30 s). */
  readonly headerTimeoutMs: number;
  /**
   * A connection with no request under way, or a request whose body stopped
   * arriving, is closed after this long without a byte (BERTH_IDLE_TIMEOUT_SECONDS, default 60 s).
   */
  readonly idleTimeoutMs: number;
  /** Open connections, upgraded ones included (BERTH_MAX_CONNECTIONS). */
  readonly maxConnections: number;
  /** Open connections from one client address (BERTH_MAX_CONNECTIONS_PER_CLIENT). */
  readonly maxConnectionsPerClient: number;
}

export interface GuardedServerOptions {
  /** Names the listener in log lines: 'api' or 'proxy'. */
  name: string;
  limits: ListenerLimits;
  logger: { warn(fields: object, message: string): void };
  /**
   * Deadline for receiving a whole request, body included; 0 for none (the
   * proxy: uploads take as long as they take, as long as bytes keep coming).
   */
  requestTimeoutMs: number;
}

/** Node only looks for expired request heads this often; the deadline is moved earlier by as much. */
const MAX_CHECK_INTERVAL_MS = 1000;
/** At most one "cap reached" line per listener in this time, with a count of what was refused meanwhile. */
const CAP_LOG_INTERVAL_MS = 60_000;

/**
 * An http.Server that cuts off slow request heads, idle connections and
 * stalled request bodies, and refuses connections over its caps. Once a
 * request is in and its answer is under way (a long poll, an SSE stream), or
 * the connection was upgraded (a WebSocket), no deadline applies to it.
 */
export function createGuardedServer(options: GuardedServerOptions, handler: RequestListener): http.Server {
  const { limits } = options;
  const checkIntervalMs = Math.min(MAX_CHECK_INTERVAL_MS, Math.max(50, Math.floor(limits.headerTimeoutMs / 10)));
  const headersTimeout = Math.max(1, limits.headerTimeoutMs - checkIntervalMs);
  const server = http.createServer(
    {
      headersTimeout,
      requestTimeout: options.requestTimeoutMs === 0 ? 0 : Math.max(options.requestTimeoutMs, headersTimeout),
      keepAliveTimeout: limits.idleTimeoutMs,
      // Node's default (30 s) alone would let a slow head live up to twice the deadline.
      connectionsCheckingInterval: checkIntervalMs,
    },
    handler,
  );
  // The socket timeout fires after idleTimeoutMs without a byte either way; onIdle decides what it means.
  server.timeout = limits.idleTimeoutMs;
  const current = new WeakMap<Socket, ServerResponse>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => current.set(req.socket, res));
  server.on('timeout', (socket: Socket) => onIdle(socket, current.get(socket)));
  const caps = new ConnectionCaps(options);
  server.on('connection', (socket: Socket) => caps.admit(socket));
  return server;
}

/**
 * With a 'timeout' listener on the server Node no longer destroys the socket
 * itself. Waiting for the head is the header deadline's job; a request whose
 * body is complete may wait for its answer as long as it needs.
 */
function onIdle(socket: Socket, res: ServerResponse | undefined): void {
  const answering = res !== undefined && !res.writableFinished;
  if (answering && res.req.complete) return;
  socket.destroy();
}

const newRequestId = customAlphabet('0123456789abcdefghijklmnopqrstuvwxyz', 16);
const REFUSED_TOTAL = 'this listener holds as many connections as it allows; retry later';
const REFUSED_CLIENT = 'this address holds as many connections as one client may; close some and retry';

/** berth's JSON error body as a raw response: the request head has not been read, and will not be. */
function refusal(message: string): string {
  const body = JSON.stringify({
    error: { message, type: 'unavailable_error', code: 'too_many_connections', status: 503, id: `req_${newRequestId()}` },
  });
  return (
    `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `Retry-After: 5\r\nConnection: close\r\n\r\n${body}`
  );
}

/** Counts open connections, in total and per client address, and turns away those over a cap. */
class ConnectionCaps {
  private total = 0;
  private readonly perClient = new Map<string, number>();
  private refusedSinceLog = 0;
  private lastLogAt = -Infinity;

  constructor(private readonly options: GuardedServerOptions) {}

  admit(socket: Socket): void {
    const { maxConnections, maxConnectionsPerClient } = this.options.limits;
    const client = socket.remoteAddress ?? 'unknown';
    const fromClient = this.perClient.get(client) ?? 0;
    if (this.total >= maxConnections) return this.refuse(socket, REFUSED_TOTAL, { limit: 'total', max_connections: maxConnections });
    if (fromClient >= maxConnectionsPerClient) {
      return this.refuse(socket, REFUSED_CLIENT, { limit: 'per_client', client, max_connections_per_client: maxConnectionsPerClient });
    }
    this.total++;
    this.perClient.set(client, fromClient + 1);
    socket.once('close', () => {
      this.total--;
      const left = (this.perClient.get(client) ?? 1) - 1;
      if (left === 0) this.perClient.delete(client);
      else this.perClient.set(client, left);
    });
  }

  private refuse(socket: Socket, message: string, fields: object): void {
    socket.on('error', () => undefined);
    // Written before the head is read: a socket that still has room takes it at once, and nothing more is waited for.
    socket.write(refusal(message));
    socket.destroy();
    this.refusedSinceLog++;
    const now = performance.now();
    if (now - this.lastLogAt < CAP_LOG_INTERVAL_MS) return;
    this.lastLogAt = now;
    this.options.logger.warn(
      { listener: this.options.name, ...fields, refused: this.refusedSinceLog, open_connections: this.total },
      'connection cap reached; refusing connections',
    );
    this.refusedSinceLog = 0;
  }
}

/**
 * The process's soft limit on open files, from /proc on Linux; undefined elsewhere.
 * Node raises the soft limit to the hard one at start, so this is what berth really has.
 */
export function openFilesLimit(): number | undefined {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}
