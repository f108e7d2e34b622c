import type { Transaction } from 'kysely';
import type { Database } from '../database.ts';

/**
 * Holds the account's row until the transaction ends, so that two connects
 * spawning in one account count live backends one after the other. NO KEY
 * UPDATE leaves foreign-key checks (new services, tokens) unblocked.
 */
export async function lockAccountSpawns(trx: Transaction<Database>, accountName: string): Promise<void> {
  await trx.selectFrom('accounts').select('name').where('name', '=', accountName).forNoKeyUpdate().execute();
}

export async function countLiveBackendsOfAccount(trx: Transaction<Database>, accountName: string): Promise<number> {
  const row = await trx
    .selectFrom('backends')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('account_name', '=', accountName)
    .where('status', '<>', 'terminated')
    .executeTakeFirstOrThrow();
  return Number(row.count);
}
