import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../database.ts';
import type { EnvironmentRow, ServiceRow } from './service.table.ts';

/** Inserts the service; resolves to undefined when the name is taken in the account. */
export async function insertService(
  trx: Transaction<Database>,
  service: { account_name: string; name: string; image_repository: string; container_user?: string | null; read_only_root?: boolean; cap_add?: string[] },
): Promise<ServiceRow | undefined> {
  const { cap_add: capAdd, ...columns } = service;
  return trx
    .insertInto('services')
    .values({ ...columns, ...(capAdd ? { cap_add: JSON.stringify(capAdd) } : {}) })
    .onConflict((oc) => oc.columns(['account_name', 'name']).doNothing())
    .returningAll()
    .executeTakeFirst();
}

export async function findService(db: Kysely<Database>, accountName: string, name: string): Promise<ServiceRow | undefined> {
  return db
    .selectFrom('services')
    .selectAll()
    .where('account_name', '=', accountName)
    .where('name', '=', name)
    .executeTakeFirst();
}

export async function listServiceNames(db: Kysely<Database>, accountName: string): Promise<string[]> {
  const rows = await db.selectFrom('services').select('name').where('account_name', '=', accountName).orderBy('name').execute();
  return rows.map((row) => row.name);
}

export async function lockService(trx: Transaction<Database>, accountName: string, name: string): Promise<ServiceRow | undefined> {
  return trx
    .selectFrom('services')
    .selectAll()
    .where('account_name', '=', accountName)
    .where('name', '=', name)
    .forUpdate()
    .executeTakeFirst();
}

/** Deletes the service (its environments go with it); resolves to false when there was none. */
export async function deleteService(db: Kysely<Database>, accountName: string, name: string): Promise<boolean> {
  const result = await db
    .deleteFrom('services')
    .where('account_name', '=', accountName)
    .where('name', '=', name)
    .executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/** Changes the admin's container settings; resolves to false when there is no such service. */
export async function updateContainerSettings(
  db: Kysely<Database>,
  accountName: string,
  name: string,
  settings: { container_user?: string | null; read_only_root?: boolean; cap_add?: string[] },
): Promise<boolean> {
  const { cap_add: capAdd, ...columns } = settings;
  const result = await db
    .updateTable('services')
    .set({ ...columns, ...(capAdd ? { cap_add: JSON.stringify(capAdd) } : {}) })
    .where('account_name', '=', accountName)
    .where('name', '=', name)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function listEnvironments(db: Kysely<Database>, accountName: string, serviceName: string): Promise<EnvironmentRow[]> {
  return db
    .selectFrom('environments')
    .selectAll()
    .where('account_name', '=', accountName)
    .where('service_name', '=', serviceName)
    .orderBy('created_at')
    .orderBy('name')
    .execute();
}

/** Creates the environment or points an existing one at another image tag. */
export async function upsertEnvironment(
  db: Kysely<Database>,
  environment: { account_name: string; service_name: string; name: string; image_tag: string; cluster: string; warm_pool_size?: number },
): Promise<void> {
  await db
    .insertInto('environments')
    .values(environment)
    .onConflict((oc) =>
      oc.columns(['account_name', 'service_name', 'name']).doUpdateSet((eb) => ({
        image_tag: eb.ref('excluded.image_tag'),
        ...(environment.warm_pool_size !== undefined ? { warm_pool_size: eb.ref('excluded.warm_pool_size') } : {}),
      })),
    )
    .execute();
}
