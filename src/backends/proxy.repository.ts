import type { Kysely } from 'kysely';
import { hashConnectionToken } from '../core/token-hash.ts';
import type { Database } from '../database.ts';
import type { BackendStatus } from '../core/backend-status.ts';

/** The queries of the proxy: what a connection token routes to, and activity. */

export interface TokenRouteRow {
  backend_id: string;
  username: string | null;
  auth: Record<string, unknown> | null;
  secret_token: string;
  status: BackendStatus;
  host_port: number | null;
  host_address: string | null;
  /** Newest status row of the backend, read in the same snapshot as `status`. */
  status_id: string | number | null;
}

export interface BackendRouteRow {
  status: BackendStatus;
  host_port: number | null;
  host_address: string | null;
  status_id: string | number | null;
}

/** Looks the token up by its hash, the only form stored. */
export async function findTokenRoute(db: Kysely<Database>, token: string): Promise<TokenRouteRow | undefined> {
  return db
    .selectFrom('connection_tokens as t')
    .innerJoin('backends as b', 'b.id', 't.backend_id')
    .select(['t.backend_id', 't.username', 't.auth', 'b.secret_token', 'b.status', 'b.host_port', 'b.host_address'])
    .select((eb) =>
      eb.selectFrom('backend_statuses as s').select((s) => s.fn.max('s.id').as('id')).whereRef('s.backend_id', '=', 'b.id').as('status_id'),
    )
    .where('t.token_hash', '=', hashConnectionToken(token))
    .executeTakeFirst();
}

export async function findBackendRoute(db: Kysely<Database>, backendId: string): Promise<BackendRouteRow | undefined> {
  return db
    .selectFrom('backends as b')
    .select(['b.status', 'b.host_port', 'b.host_address'])
    .select((eb) =>
      eb.selectFrom('backend_statuses as s').select((s) => s.fn.max('s.id').as('id')).whereRef('s.backend_id', '=', 'b.id').as('status_id'),
    )
    .where('b.id', '=', backendId)
    .executeTakeFirst();
}
