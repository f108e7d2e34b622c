import type { BackendStatus, StatusEvent } from '../src/core/backend-status.ts';
import type { ActivityReport } from './activity.ts';
import type { HostAddress } from '../src/core/address.ts';

/** Where a backend stands, as of the status row `statusId`. */
export interface BackendRouteState {
  status: BackendStatus;
  /** Id of the newest status row: events at or below it are already reflected. */
  statusId: number;
  /** Where the container's port 8080 is published: the node's address and port; null until it has one. */
  address: HostAddress | null;
}

/** A connection token and what the proxy needs to route it. */
export interface TokenRecord extends BackendRouteState {
  token: string;
  backendId: string;
  /** The connect's `user`. */
  username: string | null;
  /** The connect's `auth`. */
  auth: Record<string, unknown> | null;
  secretToken: string;
}

/**
 * The proxy's view of storage, implemented in src/backends/ on the database.
 * None of it runs per request: lookups fill the proxy's cache, status events
 * keep it fresh, and activity is written in batches.
 */
export interface ProxyStore {
  findToken(token: string): Promise<TokenRecord | undefined>;
  findBackendState(backendId: string): Promise<BackendRouteState | undefined>;
  /** Heartbeat, open connections, and last_activity_at = `at` (never backwards) for every backend touched. */
  recordActivity(report: ActivityReport): Promise<void>;
  /** Forgets a proxy that stops, with its open connections. */
  removeProxy(proxyId: string): Promise<void>;
  /** Hears every status step recorded by any berth process. */
  subscribe(listener: (event: StatusEvent) => void): () => void;
}
