import type { Kysely } from 'kysely';
import type { BackendRouteState, ProxyStore, TokenRecord } from '../../proxy/store.ts';
import type { HostAddress } from '../core/address.ts';
import type { Database } from '../database.ts';
import type { StatusEvent } from '../core/backend-status.ts';
import { findBackendRoute, findTokenRoute } from './proxy.repository.ts';
import type { ActivityReport } from '../../proxy/activity.ts';
import { deleteProxy, writeActivityReport } from './activity.repository.ts';
import type { StatusHub } from './status-hub.ts';

/** The proxy's storage, on the database. */
export class DatabaseProxyStore implements ProxyStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly hub: StatusHub,
  ) {}

  async findToken(token: string): Promise<TokenRecord | undefined> {
    const row = await findTokenRoute(this.db, token);
    return (
      row && {
        token,
        backendId: row.backend_id,
        username: row.username,
        auth: row.auth,
        secretToken: row.secret_token,
        status: row.status,
        statusId: Number(row.status_id ?? 0),
        address: addressOf(row),
      }
    );
  }

  async findBackendState(backendId: string): Promise<BackendRouteState | undefined> {
    const row = await findBackendRoute(this.db, backendId);
    return row && { status: row.status, statusId: Number(row.status_id ?? 0), address: addressOf(row) };
  }

  recordActivity(report: ActivityReport): Promise<void> {
    return writeActivityReport(this.db, report);
  }

  removeProxy(proxyId: string): Promise<void> {
    return deleteProxy(this.db, proxyId);
  }

  subscribe(listener: (event: StatusEvent) => void): () => void {
    return this.hub.subscribe('*', listener);
  }
}

/** Rows written before nodes existed have no address: their one node was this host. */
function addressOf(row: { host_address: string | null; host_port: number | null }): HostAddress | null {
  return row.host_port === null ? null : { host: row.host_address ?? '127.0.0.1', port: row.host_port };
}
