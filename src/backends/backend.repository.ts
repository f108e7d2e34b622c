import { sql, type Insertable, type Kysely, type Transaction } from 'kysely';
import { hashConnectionToken } from '../core/token-hash.ts';
import type { Database } from '../database.ts';
import type { BackendStatus } from '../core/backend-status.ts';
import type { BackendRow, BackendStatusRow, BackendStatusTable, NewBackendRow } from './backend.table.ts';

/** Channel every status row is announced on, with the row as JSON. */
export const STATUS_CHANNEL = 'berth_backend_status';

export async function findBackend(db: Kysely<Database>, id: string): Promise<BackendRow | undefined> {
  return db.selectFrom('backends').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * A backend with the id of its key's backend still being stopped, if any, in
 * one query: what a node reads before it starts a backend.
 */
export async function findBackendWithDyingPredecessor(db: Kysely<Database>, id: string): Promise<(BackendRow & { predecessor: string | null }) | undefined> {
  return db
    .selectFrom('backends as b')
    .selectAll('b')
    .select((eb) =>
      eb
        .selectFrom('backends as p')
        .select('p.id')
        .whereRef('p.account_name', '=', 'b.account_name')
        .whereRef('p.service_name', '=', 'b.service_name')
        .whereRef('p.key', '=', 'b.key')
        .where('p.status', 'in', ['terminating', 'hard-terminating'])
        .limit(1)
        .as('predecessor'),
    )
    .where('b.id', '=', id)
    .executeTakeFirst();
}

export async function lockBackend(trx: Transaction<Database>, id: string): Promise<BackendRow | undefined> {
  return trx.selectFrom('backends').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
}

export async function findLiveBackendByKey(
  db: Kysely<Database>,
  accountName: string,
  serviceName: string,
  key: string,
): Promise<BackendRow | undefined> {
  return db
    .selectFrom('backends')
    .selectAll()
    .where('account_name', '=', accountName)
    .where('service_name', '=', serviceName)
    .where('key', '=', key)
    .where('status', 'not in', ['terminating', 'hard-terminating', 'terminated'])
    .executeTakeFirst();
}

/** The backend of a key that waits (`scheduled`) for its predecessor to end. */
export async function findScheduledBackendOfKey(db: Kysely<Database>, key: { accountName: string; serviceName: string; key: string }): Promise<string | undefined> {
  const row = await db
    .selectFrom('backends')
    .select('id')
    .where('account_name', '=', key.accountName)
    .where('service_name', '=', key.serviceName)
    .where('key', '=', key.key)
    .where('status', '=', 'scheduled')
    .executeTakeFirst();
  return row?.id;
}

/**
 * Locks the key's row (creating it first), so that concurrent connects for one
 * key queue up here and each sees what the one before it committed. One
 * statement: a conflict's no-op update takes the lock.
 */
export async function lockKey(trx: Transaction<Database>, accountName: string, serviceName: string, key: string): Promise<void> {
  await trx
    .insertInto('backend_keys')
    .values({ account_name: accountName, service_name: serviceName, key })
    .onConflict((oc) => oc.columns(['account_name', 'service_name', 'key']).doUpdateSet({ fencing_token: sql<number>`backend_keys.fencing_token` }))
    .execute();
}

export async function incrementFencingToken(
  trx: Transaction<Database>,
  accountName: string,
  serviceName: string,
  key: string,
): Promise<number> {
  const row = await trx
    .updateTable('backend_keys')
    .set({ fencing_token: sql<number>`fencing_token + 1` })
    .where('account_name', '=', accountName)
    .where('service_name', '=', serviceName)
    .where('key', '=', key)
    .returning('fencing_token')
    .executeTakeFirstOrThrow();
  return Number(row.fencing_token);
}

export async function insertBackend(trx: Transaction<Database>, backend: NewBackendRow): Promise<void> {
  await trx.insertInto('backends').values(backend).execute();
}

/**
 * One statement: the status row, the backend's current status, and the
 * notification, delivered on commit to every berth process listening on the
 * database (the row as JSON, read back by statusRowToEvent).
 */
export async function insertStatusRow(
  trx: Transaction<Database>,
  row: Omit<Insertable<BackendStatusTable>, 'id'>,
): Promise<BackendStatusRow> {
  const { rows } = await sql<BackendStatusRow & { notified: unknown }>`
    with inserted as (
      insert into backend_statuses (backend_id, status, time, last_status, termination_reason, termination_kind, exit_error, exit_code, message, address)
      values (${row.backend_id}, ${row.status}, ${row.time}, ${row.last_status ?? null}, ${row.termination_reason ?? null}, ${row.termination_kind ?? null},
              ${row.exit_error ?? null}, ${row.exit_code ?? null}, ${row.message ?? null}, ${row.address ?? null})
      returning *
    ), moved as (
      update backends set status = ${row.status}, status_time = ${row.time} where id = ${row.backend_id}
    )
    select inserted.*, pg_notify(${STATUS_CHANNEL}, row_to_json(inserted)::text) as notified from inserted`.execute(trx);
  const { notified: _notified, ...inserted } = rows[0]!;
  return inserted;
}

export async function listStatusRows(db: Kysely<Database>, backendId: string, afterId = 0): Promise<BackendStatusRow[]> {
  return db
    .selectFrom('backend_statuses')
    .selectAll()
    .where('backend_id', '=', backendId)
    .where('id', '>', String(afterId) as unknown as number)
    .orderBy('id')
    .execute();
}

export async function latestStatusRow(db: Kysely<Database>, backendId: string): Promise<BackendStatusRow | undefined> {
  return db
    .selectFrom('backend_statuses')
    .selectAll()
    .where('backend_id', '=', backendId)
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/** The newest terminating or hard-terminating row: why and how a backend is being stopped. */
export async function latestTerminationRow(db: Kysely<Database>, backendId: string): Promise<BackendStatusRow | undefined> {
  return db
    .selectFrom('backend_statuses')
    .selectAll()
    .where('backend_id', '=', backendId)
    .where('status', 'in', ['terminating', 'hard-terminating'])
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/**
 * Deletes at most `limit` backends terminated before `before`; their statuses,
 * connection tokens and logs go with them (ON DELETE CASCADE). Key rows stay,
 * so that a key's fencing token keeps rising.
 */
export async function deleteTerminatedBackends(db: Kysely<Database>, before: Date, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('backends')
    .where('id', 'in', (eb) =>
      eb.selectFrom('backends').select('id').where('status', '=', 'terminated').where('status_time', '<', before).limit(limit),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

export async function markServiceSpawned(trx: Transaction<Database>, accountName: string, serviceName: string, environment: string, at: Date): Promise<void> {
  await sql`
    with service as (
      update services set last_spawned_at = ${at} where account_name = ${accountName} and name = ${serviceName}
    )
    update environments set last_spawned_at = ${at} where account_name = ${accountName} and service_name = ${serviceName} and name = ${environment}`.execute(trx);
}

export async function listServiceBackends(
  db: Kysely<Database>,
  accountName: string,
  serviceName: string,
  range: { start?: Date; end?: Date; limit: number },
): Promise<BackendRow[]> {
  let query = db
    .selectFrom('backends')
    .selectAll()
    .where('account_name', '=', accountName)
    .where('service_name', '=', serviceName);
  if (range.start) query = query.where('created_at', '>=', range.start);
  if (range.end) query = query.where('created_at', '<=', range.end);
  return query.orderBy('created_at', 'desc').orderBy('id').limit(range.limit).execute();
}

export async function listLiveBackends(db: Kysely<Database>, accountName?: string): Promise<BackendRow[]> {
  let query = db.selectFrom('backends').selectAll().where('status', '<>', 'terminated');
  if (accountName) query = query.where('account_name', '=', accountName);
  return query.orderBy('created_at', 'desc').execute();
}

/** A node's live backends; those made before nodes existed (no node) go with any node that asks. */
export async function listLiveBackendsOfNode(db: Kysely<Database>, nodeName: string): Promise<Array<Pick<BackendRow, 'id' | 'status' | 'container_id'>>> {
  return db
    .selectFrom('backends')
    .select(['id', 'status', 'container_id'])
    .where('status', '<>', 'terminated')
    .where((eb) => eb.or([eb('node_name', '=', nodeName), eb('node_name', 'is', null)]))
    .orderBy('created_at')
    .execute();
}

export async function countLiveBackendsOfService(db: Kysely<Database>, accountName: string, serviceName: string): Promise<number> {
  const row = await db
    .selectFrom('backends')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('account_name', '=', accountName)
    .where('service_name', '=', serviceName)
    .where('status', '<>', 'terminated')
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

export async function countBackendsByStatus(db: Kysely<Database>): Promise<Map<BackendStatus, number>> {
  const rows = await db
    .selectFrom('backends')
    .select(['status', (eb) => eb.fn.countAll<string>().as('count')])
    .groupBy('status')
    .execute();
  return new Map(rows.map((row) => [row.status, Number(row.count)]));
}

export async function setBackendContainer(
  db: Kysely<Database>,
  id: string,
  container: { container_id: string; host_port: number; image_digest?: string },
): Promise<void> {
  await db.updateTable('backends').set(container).where('id', '=', id).execute();
}

export async function raiseMaxMemory(db: Kysely<Database>, id: string, bytes: number): Promise<void> {
  await db
    .updateTable('backends')
    .set({ max_mem_bytes: bytes })
    .where('id', '=', id)
    .where((eb) => eb.or([eb('max_mem_bytes', 'is', null), eb('max_mem_bytes', '<', bytes)]))
    .execute();
}

/**
 * Idle or past their lifetime, as of `now`; `ready` ones only, the others are
 * still starting or stopping. Idle means: no activity for max_idle_seconds, no
 * open connection through any live proxy (one whose heartbeat is within
 * `proxyLeaseMs`), and every live proxy has reported since the backend's idle
 * deadline passed, so that a late report is never taken for idleness.
 */
export async function listSweepableBackends(
  db: Kysely<Database>,
  now: Date,
  proxyLeaseMs: number,
  nodeName: string,
): Promise<Array<{ id: string; reason: 'idle' | 'lifetime' }>> {
  const liveSince = new Date(now.getTime() - proxyLeaseMs);
  // Idle time starts at the latest activity, and never before the backend was ready (status_time of `ready`):
  // a start that took longer than max_idle_seconds is not idleness.
  const idleDeadline = sql<Date>`greatest(b.last_activity_at, b.status_time) + make_interval(secs => b.max_idle_seconds)`;
  const rows = await db
    .selectFrom('backends as b')
    .select(['b.id', 'b.created_at', 'b.lifetime_limit_seconds'])
    .where('b.status', '=', 'ready')
    .where((eb) => eb.or([eb('b.node_name', '=', nodeName), eb('b.node_name', 'is', null)]))
    .where((eb) =>
      eb.or([
        eb.and([
          eb(idleDeadline, '<', sql<Date>`${now}::timestamptz`),
          eb.not(
            eb.exists(
              eb
                .selectFrom('proxy_connections as pc')
                .innerJoin('proxies as p', 'p.id', 'pc.proxy_id')
                .select(sql`1`.as('one'))
                .whereRef('pc.backend_id', '=', 'b.id')
                .where('pc.open_count', '>', 0)
                .where('p.heartbeat_at', '>=', liveSince),
            ),
          ),
          eb.not(
            eb.exists(
              eb
                .selectFrom('proxies as p')
                .select(sql`1`.as('one'))
                .where('p.heartbeat_at', '>=', liveSince)
                .where('p.heartbeat_at', '<=', idleDeadline),
            ),
          ),
        ]),
        eb.and([
          eb('b.lifetime_limit_seconds', 'is not', null),
          eb('b.created_at', '<', sql<Date>`${now}::timestamptz - make_interval(secs => b.lifetime_limit_seconds)`),
        ]),
      ]),
    )
    .execute();
  return rows.map((row) => ({
    id: row.id,
    reason:
      row.lifetime_limit_seconds !== null && row.created_at.getTime() + row.lifetime_limit_seconds * 1000 < now.getTime()
        ? 'lifetime'
        : 'idle',
  }));
}

export async function findOrCreateInstallationId(db: Kysely<Database>, candidate: string): Promise<string> {
  await db.insertInto('installation').values({ id: candidate }).onConflict((oc) => oc.doNothing()).execute();
  // Only the first row counts; a concurrent first start inserts at most one more, never read.
  const row = await db.selectFrom('installation').select('id').orderBy('created_at').orderBy('id').limit(1).executeTakeFirstOrThrow();
  return row.id;
}

/** When each backend first became ready, for a list of backends, in one query. */
export async function findReadyTimes(db: Kysely<Database>, backendIds: string[]): Promise<Map<string, Date>> {
  if (backendIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('backend_statuses')
    .select(['backend_id', (eb) => eb.fn.min<Date>('time').as('ready_at')])
    .where('backend_id', 'in', backendIds)
    .where('status', '=', 'ready')
    .groupBy('backend_id')
    .execute();
  return new Map(rows.map((row) => [row.backend_id, new Date(row.ready_at)]));
}

/** The newest status row of each backend of a list, in one query. */
export async function findLatestStatusRows(db: Kysely<Database>, backendIds: string[]): Promise<Map<string, BackendStatusRow>> {
  if (backendIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('backend_statuses')
    .selectAll()
    .distinctOn('backend_id')
    .where('backend_id', 'in', backendIds)
    .orderBy('backend_id')
    .orderBy('id', 'desc')
    .execute();
  return new Map(rows.map((row) => [row.backend_id, row]));
}
