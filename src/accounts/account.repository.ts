import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import type { AccountRow, ApiTokenRow } from './account.table.ts';

/** Inserts the account; resolves to undefined when the name is taken. */
export async function insertAccount(db: Kysely<Database>, name: string): Promise<AccountRow | undefined> {
  return db
    .insertInto('accounts')
    .values({ name })
    .onConflict((oc) => oc.column('name').doNothing())
    .returningAll()
    .executeTakeFirst();
}

export async function findAccount(db: Kysely<Database>, name: string): Promise<AccountRow | undefined> {
  return db.selectFrom('accounts').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function listAccountNames(db: Kysely<Database>): Promise<string[]> {
  const rows = await db.selectFrom('accounts').select('name').orderBy('name').execute();
  return rows.map((row) => row.name);
}

export async function insertApiToken(
  db: Kysely<Database>,
  token: { id: string; account_name: string | null; secret_hash: string; is_admin: boolean },
): Promise<void> {
  await db.insertInto('api_tokens').values(token).execute();
}

export async function findApiToken(db: Kysely<Database>, id: string): Promise<ApiTokenRow | undefined> {
  return db.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function hasAdminToken(db: Kysely<Database>): Promise<boolean> {
  const row = await db.selectFrom('api_tokens').select('id').where('is_admin', '=', true).executeTakeFirst();
  return row !== undefined;
}

/** Deletes the account's token; resolves to false when there was none. */
export async function deleteApiToken(db: Kysely<Database>, accountName: string, id: string): Promise<boolean> {
  const result = await db
    .deleteFrom('api_tokens')
    .where('id', '=', id)
    .where('account_name', '=', accountName)
    .executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/** Whether an API token (by id) still exists: revoking deletes it. */
export async function apiTokenExists(db: Kysely<Database>, id: string): Promise<boolean> {
  const row = await db.selectFrom('api_tokens').select('id').where('id', '=', id).executeTakeFirst();
  return row !== undefined;
}
