import type { BackendStatus, StatusEvent } from '../src/core/backend-status.ts';
import type { Logger } from '../src/core/logger.ts';
import { parseAddress, type HostAddress } from '../src/core/address.ts';
import { verifiedHeaders, type VerifiedHeaders } from './headers.ts';
import type { BackendRouteState, ProxyStore, TokenRecord } from './store.ts';

/** What the proxy does with a request for a backend: forward it, hold it, or refuse it. */
export type RoutePhase = 'ready' | 'pending' | 'gone';

/** Tokens kept; past this the oldest are dropped (and looked up again if used). */
const MAX_TOKENS = 100_000;
/** Unknown tokens remembered, so that a stale URL polled in a loop costs no queries. */
const MAX_UNKNOWN = 10_000;
const UNKNOWN_TTL_MS = 5_000;
/** Recent status events, replayed onto a lookup that was in flight when they arrived. */
const RECENT_EVENTS = 1024;
/**
 * While requests wait for a backend, its state is also read from the database
 * this often: waiting is bounded anyway, but a lost notification must not turn
 * into a wait for nothing.
 */
const WAIT_POLL_MS = 2_000;
/** Connection tokens are nanoids; anything else is refused without a query. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{8,128}$/;

/** A backend as the proxy routes to it: shared by its tokens, updated in place by status events. */
export interface BackendRoute {
  readonly id: string;
  /** `{id}.{domain}` when BERTH_PROXY_DOMAIN is set: the only Host its tokens are served on. */
  readonly host: string | undefined;
  status: BackendStatus;
  statusId: number;
  address: HostAddress | null;
  phase: RoutePhase;
  readonly tokens: Set<string>;
  readonly waiters: Set<() => void>;
  pollTimer: NodeJS.Timeout | undefined;
  refreshing: boolean;
}

export interface TokenRoute {
  readonly token: string;
  readonly backend: BackendRoute;
  readonly headers: VerifiedHeaders;
}

export interface TokenCacheOptions {
  store: ProxyStore;
  logger: Logger;
  /** BERTH_PROXY_DOMAIN, if set. */
  domain: string | undefined;
  /** Hears a backend whose phase or address changed (the nginx edge follows it). */
  onChange?: (backend: BackendRoute) => void;
}

function phaseOf(status: BackendStatus, address: HostAddress | null): RoutePhase {
  switch (status) {
    case 'ready':
      return address === null ? 'pending' : 'ready';
    case 'terminating':
    case 'hard-terminating':
    case 'terminated':
      return 'gone';
    default:
      return 'pending';
  }
}

/**
 * Connection tokens, resolved once from the database and then kept fresh by
 * status events: routing a request is a map lookup. Tokens issued by any berth
 * process, before or after this one started, resolve the same way.
 */
export class TokenCache {
  private readonly tokens = new Map<string, TokenRoute>();
  private readonly backends = new Map<string, BackendRoute>();
  private readonly unknown = new Map<string, number>();
  private readonly loading = new Map<string, Promise<TokenRoute | undefined>>();
  private readonly recent: StatusEvent[] = [];
  private eventCount = 0;
  private unsubscribe: (() => void) | undefined;
  private readonly store: ProxyStore;
  private readonly logger: Logger;
  private readonly domain: string | undefined;
  private readonly onChange: ((backend: BackendRoute) => void) | undefined;

  constructor(options: TokenCacheOptions) {
    this.store = options.store;
    this.logger = options.logger;
    this.domain = options.domain?.toLowerCase();
    this.onChange = options.onChange;
  }

  start(): void {
    this.unsubscribe ??= this.store.subscribe((event) => this.onStatus(event));
  }

  /** Stops following events; whoever waits gets the phase as it stands. Idempotent. */
  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const backend of this.backends.values()) this.wake(backend);
  }

  /** The cached route of a token: the hot path, no I/O. */
  get(token: string): TokenRoute | undefined {
    return this.tokens.get(token);
  }

  /** Looks a token up in the database (once, however many requests ask at the same time). */
  load(token: string): Promise<TokenRoute | undefined> {
    const cached = this.tokens.get(token);
    if (cached) return Promise.resolve(cached);
    if (!TOKEN_SHAPE.test(token)) return Promise.resolve(undefined);
    const unknownUntil = this.unknown.get(token);
    if (unknownUntil !== undefined) {
      if (unknownUntil > Date.now()) return Promise.resolve(undefined);
      this.unknown.delete(token);
    }
    let pending = this.loading.get(token);
    if (!pending) {
      pending = this.fetch(token).finally(() => this.loading.delete(token));
      this.loading.set(token, pending);
    }
    return pending;
  }

  /**
   * Resolves once the backend is ready or gone, or with 'pending' after
   * `timeoutMs` or when `signal` aborts (the client went away).
   */
  waitUntilSettled(backend: BackendRoute, timeoutMs: number, signal?: AbortSignal): Promise<RoutePhase> {
    if (backend.phase !== 'pending' || !this.unsubscribe) return Promise.resolve(backend.phase);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        backend.waiters.delete(done);
        if (backend.waiters.size === 0) this.stopPolling(backend);
        resolve(backend.phase);
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done, { once: true });
      backend.waiters.add(done);
      backend.pollTimer ??= setInterval(() => this.refresh(backend), WAIT_POLL_MS);
    });
  }

  private async fetch(token: string): Promise<TokenRoute | undefined> {
    const eventsBefore = this.eventCount;
    const record = await this.store.findToken(token);
    if (!record) {
      this.rememberUnknown(token);
      return undefined;
    }
    const backend = this.backendOf(record);
    this.replayEventsSince(eventsBefore, backend);
    const route: TokenRoute = { token, backend, headers: verifiedHeaders(record) };
    this.tokens.set(token, route);
    backend.tokens.add(token);
    if (this.tokens.size > MAX_TOKENS) this.evictOldestToken();
    return route;
  }

  private backendOf(record: TokenRecord): BackendRoute {
    const known = this.backends.get(record.backendId);
    if (known) {
      this.advance(known, record, true);
      return known;
    }
    const backend: BackendRoute = {
      id: record.backendId,
      host: this.domain === undefined ? undefined : `${record.backendId}.${this.domain}`,
      status: record.status,
      statusId: record.statusId,
      address: record.address,
      phase: phaseOf(record.status, record.address),
      tokens: new Set(),
      waiters: new Set(),
      pollTimer: undefined,
      refreshing: false,
    };
    this.backends.set(backend.id, backend);
    return backend;
  }

  /** Status events that arrived while a lookup was in flight may be newer than what it read. */
  private replayEventsSince(eventsBefore: number, backend: BackendRoute): void {
    if (this.eventCount - eventsBefore > RECENT_EVENTS) {
      this.refresh(backend);
      return;
    }
    for (let n = eventsBefore; n < this.eventCount; n++) {
      const event = this.recent[n % RECENT_EVENTS];
      if (event?.backendId === backend.id) this.advance(backend, stateOf(event));
    }
  }

  private onStatus(event: StatusEvent): void {
    this.recent[this.eventCount % RECENT_EVENTS] = event;
    this.eventCount++;
    const backend = this.backends.get(event.backendId);
    if (backend) this.advance(backend, stateOf(event));
  }

  /**
   * Moves a backend to a newer state (status only ever moves forward, so an
   * older one is ignored). Events carry no port: a backend that reaches
   * `waiting` or `ready` without a known port has it read from the database.
   */
  private advance(backend: BackendRoute, state: BackendRouteState, fromDatabase = false): void {
    const { phase, address } = backend;
    if (state.statusId > backend.statusId) {
      backend.status = state.status;
      backend.statusId = state.statusId;
    }
    if (state.address !== null) backend.address = state.address;
    backend.phase = phaseOf(backend.status, backend.address);
    if (backend.phase !== phase || !sameAddress(backend.address, address)) this.onChange?.(backend);
    if (!fromDatabase && (backend.status === 'waiting' || backend.status === 'ready') && backend.address === null) this.refresh(backend);
    if (backend.phase !== 'pending') this.wake(backend);
  }

  private refresh(backend: BackendRoute): void {
    if (backend.refreshing) return;
    backend.refreshing = true;
    this.store
      .findBackendState(backend.id)
      .then((state) => {
        backend.refreshing = false;
        // A backend row never disappears while its tokens do not; treat it as gone if it did.
        this.advance(backend, state ?? { status: 'terminated', statusId: Number.MAX_SAFE_INTEGER, address: null }, true);
      })
      .catch((error: unknown) => {
        backend.refreshing = false;
        this.logger.warn({ err: error, backend_id: backend.id }, 'reading backend state for the proxy failed');
      });
  }

  private wake(backend: BackendRoute): void {
    for (const waiter of [...backend.waiters]) waiter();
    this.stopPolling(backend);
  }

  private stopPolling(backend: BackendRoute): void {
    clearInterval(backend.pollTimer);
    backend.pollTimer = undefined;
  }

  private rememberUnknown(token: string): void {
    this.unknown.set(token, Date.now() + UNKNOWN_TTL_MS);
    if (this.unknown.size > MAX_UNKNOWN) {
      const oldest = this.unknown.keys().next();
      if (!oldest.done) this.unknown.delete(oldest.value);
    }
  }

  private evictOldestToken(): void {
    const oldest = this.tokens.values().next();
    if (oldest.done) return;
    const { token, backend } = oldest.value;
    this.tokens.delete(token);
    backend.tokens.delete(token);
    if (backend.tokens.size === 0 && backend.waiters.size === 0) this.backends.delete(backend.id);
  }
}

/** A status event as route state: the steps that publish the port carry its address, so no query is needed. */
function stateOf(event: StatusEvent): BackendRouteState {
  return { status: event.status, statusId: event.id, address: event.address === null ? null : (parseAddress(event.address) ?? null) };
}

/** Events carry the address anew each time: the same place is no change. */
function sameAddress(a: HostAddress | null, b: HostAddress | null): boolean {
  return a === b || (a !== null && b !== null && a.host === b.host && a.port === b.port);
}
