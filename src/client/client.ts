import { BackendTerminatedError, BerthApiError, BerthConnectionError, BerthTimeoutError } from './errors.ts';
import { readEventStream } from './sse.ts';
import {
  BACKEND_STATUSES,
  type AuthInfo,
  type BackendInfo,
  type BackendStatus,
  type BackendSummary,
  type ConnectRequest,
  type ConnectResponse,
  type CreatedAccount,
  type CreatedToken,
  type LogLine,
  type MetricsSample,
  type NodeInfo,
  type Service,
  type ServiceImage,
} from './types.ts';

export interface BerthClientOptions {
  /** Base URL of berth's API, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** An account token (`<id>.<secret>`) or the admin token; the public status endpoints work without one. */
  token?: string;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
}

export interface StreamOptions {
  /** Aborting ends the iteration (without an error) and closes the connection. */
  signal?: AbortSignal;
  /** Resume after this event id (the `id` of the last item seen). */
  lastEventId?: string;
}

export interface LogStreamOptions extends StreamOptions {
  /**
   * Default true: stored lines, then new ones until the backend has terminated.
   * false: only the lines stored so far, then the stream ends.
   */
  follow?: boolean;
}

export interface WaitOptions {
  /** Default 300000 (five minutes, berth's default startup timeout). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** How long waitUntilReady waits by default, in ms. */
export const DEFAULT_WAIT_TIMEOUT_MS = 300_000;
/** Pause before following the status stream again after it dropped. */
const RECONNECT_DELAY_MS = 500;
const READY_RANK = BACKEND_STATUSES.indexOf('ready');

export interface ServicesApi {
  /** Creates a service with environment `default` on tag `latest`; `image` names its repository (default `{prefix}{account}/{name}`). */
  create(account: string, name: string, options?: { image?: string }): Promise<void>;
  list(account: string): Promise<string[]>;
  get(account: string, name: string): Promise<Service>;
  delete(account: string, name: string): Promise<void>;
  /** Images of the service's repository on the Docker engine, newest first. */
  images(account: string, name: string): Promise<ServiceImage[]>;
  /** Points an environment (default `default`) at an image tag or `sha256:` id. */
  useImage(account: string, name: string, tag: string, options?: { environment?: string }): Promise<void>;
  /** Sets how many warm containers each node keeps for an environment (0: none). */
  setWarmPool(account: string, name: string, size: number, options?: { environment?: string }): Promise<void>;
  /** The image repository of the service (what `berth push` tags into). */
  imageName(account: string, name: string): Promise<string>;
}

export interface AccountsApi {
  /** Admin only. */
  create(name: string): Promise<CreatedAccount>;
  /** Admin only. The secret is shown only in this answer. */
  createToken(account: string): Promise<CreatedToken>;
  /** Admin only. */
  revokeToken(account: string, id: string): Promise<void>;
}

type Query = Record<string, string | undefined>;

interface RequestOptions {
  body?: unknown;
  query?: Query;
  signal?: AbortSignal;
  /** Send the token; false for berth's public endpoints. Default true. */
  auth?: boolean;
}

/**
 * A typed client for berth's HTTP API. Every method answers the server's JSON
 * as it is (snake_case); a failure is a BerthApiError carrying the server's
 * message, code and request id.
 */
export class BerthClient {
  readonly url: string;
  readonly services: ServicesApi;
  readonly accounts: AccountsApi;
  private readonly token: string | undefined;
  private readonly fetch: typeof fetch;

  constructor(options: BerthClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.token = options.token;
    const fetchImpl = options.fetch;
    this.fetch = fetchImpl ? (input, init) => fetchImpl(input, init) : (input, init) => fetch(input, init);
    this.services = this.servicesApi();
    this.accounts = this.accountsApi();
  }

  /** Returns the backend holding `body.key`, or starts one, in `options.environment` (default `default`). */
  connect(account: string, service: string, body: ConnectRequest = {}, options: { environment?: string } = {}): Promise<ConnectResponse> {
    const environment = options.environment === undefined ? '' : `/${segment(options.environment)}`;
    return this.request('POST', `/v2/service/${segment(account)}/${segment(service)}${environment}/connect`, { body });
  }

  /** The latest status; a public endpoint, no token needed. */
  status(backendId: string, options: { signal?: AbortSignal } = {}): Promise<BackendStatus> {
    return this.request('GET', `/v2/backend/${segment(backendId)}/status`, { auth: false, ...options });
  }

  /**
   * Resolves with the `ready` status once the backend is ready, following the
   * status stream (and picking it up again where it left off if it drops).
   * Throws BackendTerminatedError when the backend goes past ready instead
   * (terminating or terminated), BerthTimeoutError after `timeoutMs`, and the
   * signal's reason when `signal` aborts.
   */
  async waitUntilReady(backendId: string, options: WaitOptions = {}): Promise<BackendStatus> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const settled = (status: BackendStatus): boolean => {
      if (status.status === 'ready') return true;
      if (BACKEND_STATUSES.indexOf(status.status) > READY_RANK) throw new BackendTerminatedError(backendId, status);
      return false;
    };
    try {
      // The stream replays the history first: a backend that was ready and is now
      // terminating would look ready on the way, so the current status decides first.
      const current = await this.status(backendId, { signal });
      if (settled(current)) return current;
      let lastEventId: string | undefined;
      while (!signal.aborted) {
        try {
          for await (const event of this.statusStream(backendId, { signal, ...(lastEventId ? { lastEventId } : {}) })) {
            if (event.id) lastEventId = event.id;
            const { id: _id, ...status } = event;
            if (settled(status)) return status;
          }
        } catch (error) {
          // berth said no (say, 404): final. A dropped connection: follow again.
          if (error instanceof BerthApiError || error instanceof BackendTerminatedError) throw error;
        }
        await delay(RECONNECT_DELAY_MS, signal);
      }
      throw signal.reason;
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (timeout.aborted) {
        throw new BerthTimeoutError(`backend "${backendId}" was not ready within ${timeoutMs} ms`, timeoutMs);
      }
      throw error;
    }
  }

  /** Terminates the backend: SIGTERM, then SIGKILL after the grace period; `hard` kills at once. */
  async terminate(backendId: string, options: { hard?: boolean } = {}): Promise<void> {
    await this.request('POST', `/v2/backend/${segment(backendId)}/terminate`, { body: options.hard ? { hard: true } : {} });
  }

  /** Metadata and the whole status history. */
  backend(backendId: string): Promise<BackendInfo> {
    return this.request('GET', `/v2/backend/${segment(backendId)}`);
  }

  /** The account's backends that have not terminated. */
  async runningBackends(account: string): Promise<BackendSummary[]> {
    return (await this.request<{ running_backends: BackendSummary[] }>('GET', `/v2/account/${segment(account)}/backends`)).running_backends;
  }

  /** The service's backends, newest first (at most 1000), created within the range. */
  async serviceBackends(account: string, service: string, range: { start?: Date; end?: Date } = {}): Promise<BackendSummary[]> {
    const query = { start: range.start?.toISOString(), end: range.end?.toISOString() };
    return (await this.request<{ backends: BackendSummary[] }>('GET', `/v2/service/${segment(account)}/${segment(service)}/backends`, { query })).backends;
  }

  /** Every node (admin token). */
  async nodes(): Promise<NodeInfo[]> {
    return (await this.request<{ nodes: NodeInfo[] }>('GET', '/v2/nodes')).nodes;
  }

  /** Takes a node out of placement (`draining`) or puts it back (`ready`); admin token. */
  async setNodeState(name: string, state: 'draining' | 'ready'): Promise<NodeInfo> {
    return this.request<NodeInfo>('POST', `/v2/node/${segment(name)}/${state === 'draining' ? 'drain' : 'ready'}`, { body: {} });
  }

  /** The accounts the token may act on, and whether it is the admin token. */
  async auth(): Promise<AuthInfo> {
    const { accounts, is_admin } = await this.request<AuthInfo>('GET', '/auth');
    return { accounts, is_admin };
  }

  /** Every status so far, then each new one; ends after `terminated`. Public: no token needed. */
  async *statusStream(backendId: string, options: StreamOptions = {}): AsyncGenerator<BackendStatus & { id?: string }, void, undefined> {
    const response = await this.openStream(`/v2/backend/${segment(backendId)}/status/stream`, options, false);
    if (!response) return;
    for await (const event of readEventStream(response, options.signal)) {
      yield { ...(JSON.parse(event.data) as BackendStatus), ...(event.id ? { id: event.id } : {}) };
    }
  }

  /** The lines the backend wrote (stdout and stderr), stored ones first; see LogStreamOptions.follow. */
  async *logStream(backendId: string, options: LogStreamOptions = {}): AsyncGenerator<LogLine, void, undefined> {
    // format=json (berth's own) adds each line's time and stream; a server that ignores it sends bare lines.
    const query = options.follow === false ? '?follow=false&format=json' : '?format=json';
    const response = await this.openStream(`/v2/backend/${segment(backendId)}/logs/stream${query}`, options, true);
    if (!response) return;
    for await (const event of readEventStream(response, options.signal)) {
      yield { ...(event.id ? { id: event.id } : {}), ...parseLogEvent(event.data) };
    }
  }

  /** About one sample a second while the backend's container runs. */
  async *metricsStream(backendId: string, options: StreamOptions = {}): AsyncGenerator<MetricsSample, void, undefined> {
    const response = await this.openStream(`/v2/backend/${segment(backendId)}/metrics/stream`, options, true);
    if (!response) return;
    for await (const event of readEventStream(response, options.signal)) {
      yield JSON.parse(event.data) as MetricsSample;
    }
  }

  private servicesApi(): ServicesApi {
    const path = (account: string, name: string) => `/v2/service/${segment(account)}/${segment(name)}`;
    return {
      create: async (account, name, options = {}) => {
        await this.request('POST', `/v2/account/${segment(account)}/service`, { body: { name, ...(options.image ? { image: options.image } : {}) } });
      },
      list: async (account) => (await this.request<{ services: string[] }>('GET', `/v2/account/${segment(account)}/services`)).services,
      get: (account, name) => this.request('GET', path(account, name)),
      delete: async (account, name) => {
        await this.request('POST', `${path(account, name)}/delete`);
      },
      images: async (account, name) => (await this.request<{ images: ServiceImage[] }>('GET', `${path(account, name)}/images`)).images,
      useImage: async (account, name, tag, options = {}) => {
        const environment = options.environment === undefined ? '' : `/${segment(options.environment)}`;
        await this.request('POST', `${path(account, name)}${environment}/update`, { body: { image_tag: tag } });
      },
      setWarmPool: async (account, name, size, options = {}) => {
        const environment = options.environment === undefined ? '' : `/${segment(options.environment)}`;
        await this.request('POST', `${path(account, name)}${environment}/update`, { body: { warm_pool_size: size } });
      },
      imageName: async (account, name) =>
        (await this.request<{ imageName: string }>('GET', `/service/${segment(account)}/${segment(name)}/image-name`)).imageName,
    };
  }

  private accountsApi(): AccountsApi {
    return {
      create: async (name) => {
        const { name: created, created_at } = await this.request<CreatedAccount>('POST', '/v2/accounts', { body: { name } });
        return { name: created, created_at };
      },
      createToken: async (account) => {
        const { token, id } = await this.request<CreatedToken>('POST', `/v2/account/${segment(account)}/tokens`);
        return { token, id };
      },
      revokeToken: async (account, id) => {
        await this.request('DELETE', `/v2/account/${segment(account)}/tokens/${segment(id)}`);
      },
    };
  }

  private async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (options.auth !== false && this.token) headers.Authorization = `Bearer ${this.token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['Content-Type'] = 'application/json';
    }
    const url = `${this.url}${path}${queryString(options.query)}`;
    const response = await this.send(url, { method, headers, body, signal: options.signal });
    if (!response.ok) throw await BerthApiError.fromResponse(response);
    return (await response.json()) as T;
  }

  /** Opens an event stream; undefined when `signal` aborted before it opened. */
  private async openStream(path: string, options: StreamOptions, auth: boolean): Promise<Response | undefined> {
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    if (auth && this.token) headers.Authorization = `Bearer ${this.token}`;
    if (options.lastEventId) headers['Last-Event-ID'] = options.lastEventId;
    let response: Response;
    try {
      response = await this.send(`${this.url}${path}`, { headers, signal: options.signal });
    } catch (error) {
      if (options.signal?.aborted) return undefined;
      throw error;
    }
    if (!response.ok) throw await BerthApiError.fromResponse(response);
    return response;
  }

  private async send(url: string, init: RequestInit): Promise<Response> {
    try {
      return await this.fetch(url, init);
    } catch (error) {
      if (init.signal?.aborted) throw error;
      throw new BerthConnectionError(this.url, error);
    }
  }
}

function segment(value: string): string {
  return encodeURIComponent(value);
}

function queryString(query: Query | undefined): string {
  const entries = Object.entries(query ?? {}).filter((entry): entry is [string, string] => entry[1] !== undefined);
  return entries.length === 0 ? '' : `?${new URLSearchParams(entries).toString()}`;
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

/** `{time, stream, line}` from a berth that understood format=json, else the bare line. */
function parseLogEvent(data: string): Omit<LogLine, 'id'> {
  if (data.startsWith('{')) {
    try {
      const parsed = JSON.parse(data) as Partial<LogLine>;
      if (typeof parsed.line === 'string' && typeof parsed.time === 'string') return { time: parsed.time, stream: parsed.stream ?? 'stdout', line: parsed.line };
    } catch {
      // A line of the backend's own that happens to start with "{".
    }
  }
  return { line: data };
}
