import type { Kysely } from 'kysely';
import type { BackendRouteState, ProxyStore, TokenRecord } from '../../proxy/store.ts';
import type { Database } from '../database.ts';
import type { StatusEvent } from './backend-status.ts';
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
        hostPort: row.host_port,
      }
    );
  }

  async findBackendState(backendId: string): Promise<BackendRouteState | undefined> {
    const row = await findBackendRoute(this.db, backendId);
    return row && { status: row.status, statusId: Number(row.status_id ?? 0), hostPort: row.host_port };
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
