import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { createGuardedServer, type ListenerLimits } from '../src/core/listener-guard.ts';
import type { Duplex } from 'node:stream';
import type { BerthError } from '../src/core/errors.ts';
import type { Logger } from '../src/core/logger.ts';
import { ActivityTracker } from './activity.ts';
import { EdgeLink } from './edge/edge-link.ts';
import { NginxEdge } from './edge/nginx-process.ts';
import { prepareHeaders } from './headers.ts';
import { countActivityWrites, responseTimer, type ProxyMetrics } from './proxy-metrics.ts';
import { forwardHttp } from './http-forward.ts';
import {
  BackendGoneError,
  BackendNotReadyError,
  BackendUnreachableError,
  HostMismatchError,
  ProxyUnavailableError,
  TokenNotFoundError,
  sendError,
  sendPreflight,
  sendSocketError,
  type ErrorAnswer,
} from './responses.ts';
import type { ProxyStore } from './store.ts';
import { TokenCache, type RoutePhase, type TokenRoute } from './token-cache.ts';
import { tunnelUpgrade } from './upgrade-tunnel.ts';

export interface ProxyServerOptions {
  store: ProxyStore;
  logger: Logger;
  /** BERTH_PROXY_DOMAIN: when set, a token is served only on the Host `{backend_id}.{domain}`. */
  domain: string | undefined;
  /** How long a request for a backend that is still starting is held (BERTH_PROXY_WAIT_SECONDS). */
  waitMs: number;
  /** Header and idle deadlines and connection caps of the listener. */
  listenerLimits: ListenerLimits;
  /** Hears each answered request and activity write; none by default. */
  metrics?: ProxyMetrics;
  /**
   * BERTH_PROXY_EDGE=nginx: nginx takes the public port and forwards ready
   * routes itself; this process listens on loopback for everything else.
   */
  edge?: { binary: string; workers: number };
}

export type ProxyServerState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

/** Where a request goes once its token is known: the client's answer and how it is ended. */
interface Exchange {
  req: IncomingMessage;
  /** The path the backend sees: the URL without its `/{token}` segment. */
  path: string;
  /** Present for a plain request; absent for an upgrade. */
  res?: ServerResponse;
  /** The client's address: the socket's, or the one the nginx edge vouches for. */
  client: string | undefined;
  /** Handed over by the nginx edge, which lacked the route. */
  viaEdge: boolean;
  socket?: Duplex;
  head?: Buffer;
}

/**
 * Splits `/{token}/rest?query` into the token and the path the backend sees,
 * `/rest?query`, every other byte unchanged.
 */
export function splitTokenPath(url: string): { token: string; path: string } | undefined {
  if (url.charCodeAt(0) !== 47 /* / */) return undefined;
  let end = 1;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 /* / */ || c === 63 /* ? */) break;
    end++;
  }
  if (end === 1) return undefined;
  const rest = url.slice(end);
  return { token: url.slice(1, end), path: rest === '' ? '/' : rest.charCodeAt(0) === 63 ? `/${rest}` : rest };
}

/**
 * The proxy listener: `/{token}/…` → the token's backend, with the token's
 * `x-verified-*` headers and nothing of the client's by those names. Plain
 * requests and upgrades take the same route. Per request it does a map lookup
 * and header edits; the database is read only to learn a token it has not
 * seen, and written once a second with activity.
 */
export class ProxyServer {
  private state: ProxyServerState = 'created';
  private readonly server: http.Server;
  private readonly cache: TokenCache;
  private readonly activity: ActivityTracker;
  private readonly log: Logger;
  /** Pooled, kept-alive connections towards backends, one pool per address. */
  private readonly agent = new Agent({ keepAliveTimeout: 4_000 });
  /** Client sockets of upgrades: the HTTP server no longer tracks them. */
  private readonly upgradeSockets = new Set<Duplex>();
  private readonly domainHasPort: boolean;
  private readonly timeResponse: ((res: ServerResponse) => void) | undefined;
  private stopping: Promise<void> | undefined;
  private edge: NginxEdge | undefined;
  private link: EdgeLink | undefined;

  constructor(private readonly options: ProxyServerOptions) {
    this.log = options.logger.child({ component: 'proxy' });
    this.cache = new TokenCache({ store: options.store, logger: this.log, domain: options.domain, onChange: (backend) => this.link?.changed(backend) });
    const sink = options.metrics ? countActivityWrites(options.store, options.metrics) : options.store;
    this.activity = new ActivityTracker(sink, this.log, undefined, options.edge && (() => this.link?.activity() ?? Promise.resolve(new Map())));
    this.timeResponse = options.metrics && responseTimer(options.metrics);
    this.domainHasPort = options.domain !== undefined && /:\d+$/.test(options.domain);
    // No overall request deadline: uploads and long polls take as long as they take, as long as bytes keep coming.
    this.server = createGuardedServer(
      { name: 'proxy', limits: options.listenerLimits, logger: this.log, requestTimeoutMs: 0 },
      (req, res) => this.onRequest(req, res),
    );
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  async listen(port: number, host: string): Promise<void> {
    if (this.state !== 'created') throw new Error(`cannot start the proxy in state ${this.state}`);
    this.setState('starting');
    this.cache.start();
    this.activity.start();
    const edge = this.options.edge;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      // Behind the edge, this listener is nginx's alone to reach.
      this.server.listen(edge ? 0 : port, edge ? '127.0.0.1' : host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    if (edge) {
      this.edge = new NginxEdge({
        binary: edge.binary,
        workers: edge.workers,
        host,
        port,
        berthPort: (this.server.address() as AddressInfo).port,
        limits: this.options.listenerLimits,
        domainHasPort: this.domainHasPort,
        logger: this.log,
        onRestart: () => this.link?.reset(),
      });
      await this.edge.start();
      const metrics = this.options.metrics;
      this.link = new EdgeLink(this.edge.admin, this.edge.secret, this.log, metrics && ((statusClass, count) => metrics.countEdgeRequests(statusClass, count)));
    }
    this.setState('running');
  }

  /** The public port: nginx's when the edge is on. */
  get port(): number | undefined {
    if (this.edge) return this.edge.port;
    return (this.server.address() as AddressInfo | null)?.port;
  }

  /** Client connections that asked to upgrade (WebSockets) and are still open, counting those still waiting for their backend. */
  get openUpgrades(): number {
    return this.upgradeSockets.size;
  }

  /** Closes every connection, then writes the last activity. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.setState('stopping');
    if (this.edge) {
      // What the edge saw since the last report, then the edge goes, and its connections with it.
      await this.activity.flush();
      this.link = undefined;
      await this.edge.stop();
    }
    const closed = new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
    this.server.closeAllConnections();
    for (const socket of this.upgradeSockets) socket.destroy();
    this.cache.stop();
    await closed;
    await this.agent.destroy().catch(() => undefined);
    await this.activity.stop();
    this.setState('stopped');
  }

  private setState(state: ProxyServerState): void {
    this.log.debug({ from: this.state, to: state }, 'proxy state');
    this.state = state;
  }

  // ---------------------------------------------------------------------------
  // Routing

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.timeResponse?.(res);
    this.route(this.exchange({ req, res }));
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (error) => this.log.debug({ err: error }, 'upgrade socket failed'));
    this.upgradeSockets.add(socket);
    socket.once('close', () => this.upgradeSockets.delete(socket));
    this.route(this.exchange({ req, socket, head }));
  }

  /** The exchange of a request, with the client's address: the nginx edge's word for it is taken only with the edge's secret. */
  private exchange(parts: Pick<Exchange, 'req' | 'res' | 'socket' | 'head'>): Exchange {
    const vouched = parts.req.headers['x-berth-edge'];
    if (vouched === undefined) return { ...parts, path: '', client: parts.req.socket.remoteAddress, viaEdge: false };
    delete parts.req.headers['x-berth-edge'];
    const secret = this.edge?.secret;
    const trusted = secret !== undefined && typeof vouched === 'string' && vouched.startsWith(`${secret} `);
    return { ...parts, path: '', client: trusted ? vouched.slice(secret.length + 1) : parts.req.socket.remoteAddress, viaEdge: trusted };
  }

  private route(exchange: Exchange): void {
    const split = splitTokenPath(exchange.req.url ?? '');
    if (!split) {
      this.refuse(exchange, new TokenNotFoundError());
      return;
    }
    exchange.path = split.path;
    const cached = this.cache.get(split.token);
    if (cached) {
      this.serve(exchange, cached);
      return;
    }
    this.cache.load(split.token).then(
      (loaded) => (loaded ? this.serve(exchange, loaded) : this.refuse(exchange, new TokenNotFoundError())),
      (error: unknown) => this.refuse(exchange, new ProxyUnavailableError(error)),
    );
  }

  private serve(exchange: Exchange, route: TokenRoute): void {
    const backend = route.backend;
    if (backend.host !== undefined && !this.hostMatches(exchange.req, backend.host)) {
      this.refuse(exchange, new HostMismatchError());
      return;
    }
    if (backend.phase === 'gone') {
      this.refuse(exchange, new BackendGoneError(backend.id));
      return;
    }
    const connection = exchange.res ?? exchange.socket;
    // Gone while the token was looked up: its 'close' has fired, so counting it would never end.
    if (!connection || connection.destroyed) return;
    // From here until the client's connection closes, the backend is in use.
    this.activity.begin(backend.id);
    connection.once('close', () => this.activity.end(backend.id));
    if (backend.phase === 'ready') this.forward(exchange, route);
    else void this.hold(exchange, route, connection);
  }

  /** Holds a request for a backend that is still starting until it is ready, gone, or the wait is over. */
  private async hold(exchange: Exchange, route: TokenRoute, connection: ServerResponse | Duplex): Promise<void> {
    const backend = route.backend;
    const clientGone = new AbortController();
    const onClose = () => clientGone.abort();
    connection.once('close', onClose);
    const started = performance.now();
    let phase: RoutePhase;
    try {
      phase = await this.cache.waitUntilSettled(backend, this.options.waitMs, clientGone.signal);
    } finally {
      connection.off('close', onClose);
    }
    if (clientGone.signal.aborted) return;
    if (phase === 'ready') this.forward(exchange, route);
    else if (phase === 'gone') this.refuse(exchange, new BackendGoneError(backend.id));
    else this.refuse(exchange, new BackendNotReadyError(backend.id, performance.now() - started));
  }

  private forward(exchange: Exchange, route: TokenRoute): void {
    const { req, res, socket, path } = exchange;
    const address = route.backend.address;
    const failed = (error: Error) => this.refuse(exchange, new BackendUnreachableError(route.backend.id, error));
    // 'ready' implies an address; without one there is nowhere to go, and a hang is worse than a 502.
    if (address === null) return failed(new Error('no published port is known'));
    prepareHeaders(req.headers, route.headers, exchange.client, res === undefined);
    if (exchange.viaEdge) this.link?.learn(route);
    if (res) forwardHttp(req, res, { host: address.host, port: address.port, path, dispatcher: this.agent }, failed);
    else if (socket) tunnelUpgrade(req, socket, exchange.head ?? Buffer.alloc(0), { host: address.host, port: address.port, path }, failed);
  }

  private hostMatches(req: IncomingMessage, expected: string): boolean {
    let host = req.headers.host?.toLowerCase();
    if (host === undefined) return false;
    if (!this.domainHasPort) {
      const colon = host.lastIndexOf(':');
      if (colon !== -1 && !host.endsWith(']')) host = host.slice(0, colon);
    }
    return host === expected;
  }

  private refuse(exchange: Exchange, error: BerthError): void {
    let answer: ErrorAnswer;
    if (exchange.res && isPreflight(exchange.req)) {
      sendPreflight(exchange.req, exchange.res);
      return;
    }
    if (exchange.res) answer = sendError(exchange.res, error);
    else if (exchange.socket) answer = sendSocketError(exchange.socket, error);
    else return;
    // The URL is not logged: its first segment is a credential.
    const line = { request_id: answer.requestId, status: answer.status, code: answer.code, upgrade: !exchange.res, ...error.details };
    if (answer.status >= 500) this.log.warn({ ...line, err: error.cause }, 'proxy request failed');
    else this.log.debug(line, 'proxy request refused');
  }
}

function isPreflight(req: IncomingMessage): boolean {
  return req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
}
