import { afterEach, describe, expect, it } from 'vitest';
import type { BackendStatus, StatusEvent } from '../src/core/backend-status.ts';
import { createLogger } from '../src/core/logger.ts';
import type { BackendRouteState, ProxyStore, TokenRecord } from '../proxy/store.ts';
import { TokenCache } from '../proxy/token-cache.ts';

const TOKEN = 'tok_0123456789abcdef';

/** A store whose answers the test controls, and which counts the queries made. */
class FakeStore implements ProxyStore {
  queries = 0;
  listener: ((event: StatusEvent) => void) | undefined;
  token: TokenRecord | undefined = record('starting', 2, null);
  backend: BackendRouteState | undefined = { status: 'starting', statusId: 2, address: null };
  /** Runs while a token lookup is in flight: what the database does meanwhile. */
  duringLookup: (() => void) | undefined;

  async findToken(): Promise<TokenRecord | undefined> {
    this.queries++;
    const answer = this.token && { ...this.token };
    await Promise.resolve();
    this.duringLookup?.();
    return answer;
  }
  async findBackendState(): Promise<BackendRouteState | undefined> {
    this.queries++;
    return this.backend && { ...this.backend };
  }
  async recordActivity(): Promise<void> {}
  async removeProxy(): Promise<void> {}
  subscribe(listener: (event: StatusEvent) => void): () => void {
    this.listener = listener;
    return () => (this.listener = undefined);
  }
  emit(status: BackendStatus, id: number): void {
    this.listener?.(event(status, id));
  }
}

function record(status: BackendStatus, statusId: number, hostPort: number | null): TokenRecord {
  const address = hostPort === null ? null : { host: '127.0.0.1', port: hostPort };
  return { token: TOKEN, backendId: 'b1', username: 'alice', auth: { a: 1 }, secretToken: 'secret', status, statusId, address };
}

function event(status: BackendStatus, id: number): StatusEvent {
  return { id, backendId: 'b1', status, time: new Date(), lastStatus: null, terminationReason: null, terminationKind: null, exitError: null, exitCode: null, message: null, address: null };
}

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('proxy token cache', () => {
  let cache: TokenCache;
  let store: FakeStore;

  function startCache(): TokenCache {
    store = new FakeStore();
    cache = new TokenCache({ store, logger: createLogger('silent'), domain: undefined });
    cache.start();
    return cache;
  }
  afterEach(() => cache?.stop());

  it('looks a token up once, however many requests ask at the same time, then answers from memory', async () => {
    startCache();
    const routes = await Promise.all([cache.load(TOKEN), cache.load(TOKEN), cache.load(TOKEN)]);
    expect(new Set(routes).size).toBe(1);
    expect(cache.get(TOKEN)).toBe(routes[0]);
    expect(store.queries).toBe(1);
    expect(routes[0]!.headers).toEqual([
      ['x-verified-username', 'alice'],
      ['x-verified-user-data', '{"a":1}'],
      ['x-verified-secret', 'secret'],
      ['x-verified-backend', 'b1'],
    ]);
  });

  it('remembers an unknown token for a while, and refuses a malformed one without a query', async () => {
    startCache();
    store.token = undefined;
    expect(await cache.load(TOKEN)).toBeUndefined();
    expect(await cache.load(TOKEN)).toBeUndefined();
    expect(await cache.load('not a token')).toBeUndefined();
    expect(store.queries).toBe(1);
  });

  it('applies a status event that arrived while the lookup was in flight', async () => {
    startCache();
    store.backend = { status: 'ready', statusId: 5, address: { host: '127.0.0.1', port: 32000 } };
    store.duringLookup = () => store.emit('ready', 5);
    const route = await cache.load(TOKEN);
    await flush();
    expect(route!.backend).toMatchObject({ status: 'ready', statusId: 5, address: { host: '127.0.0.1', port: 32000 }, phase: 'ready' });
  });

  it('never moves a backend back to an older status', async () => {
    startCache();
    store.token = record('ready', 5, 32000);
    const route = await cache.load(TOKEN);
    store.emit('waiting', 4);
    expect(route!.backend).toMatchObject({ status: 'ready', phase: 'ready' });
    store.emit('terminating', 6);
    expect(route!.backend).toMatchObject({ status: 'terminating', phase: 'gone' });
  });

  it('wakes a waiting request when the backend is ready, reading the port the event does not carry', async () => {
    startCache();
    const route = (await cache.load(TOKEN))!;
    const waiting = cache.waitUntilSettled(route.backend, 5_000);
    store.backend = { status: 'ready', statusId: 4, address: { host: '127.0.0.1', port: 32001 } };
    store.emit('ready', 4);
    expect(await waiting).toBe('ready');
    expect(route.backend.address).toEqual({ host: '127.0.0.1', port: 32001 });
  });

  it('tells a waiting request the backend is gone when it terminates first', async () => {
    startCache();
    const route = (await cache.load(TOKEN))!;
    const waiting = cache.waitUntilSettled(route.backend, 5_000);
    store.emit('hard-terminating', 3);
    expect(await waiting).toBe('gone');
  });

  it('gives up after the wait, and when the client goes away', async () => {
    startCache();
    const route = (await cache.load(TOKEN))!;
    expect(await cache.waitUntilSettled(route.backend, 50)).toBe('pending');
    const clientGone = new AbortController();
    const waiting = cache.waitUntilSettled(route.backend, 5_000, clientGone.signal);
    clientGone.abort();
    expect(await waiting).toBe('pending');
    expect(route.backend.waiters.size).toBe(0);
  });

  it('finds readiness in the database when the notification never comes', async () => {
    startCache();
    const route = (await cache.load(TOKEN))!;
    store.backend = { status: 'ready', statusId: 4, address: { host: '127.0.0.1', port: 32002 } };
    // No event: only the poll while waiting can notice.
    expect(await cache.waitUntilSettled(route.backend, 5_000)).toBe('ready');
  });
});
