import type { Transaction } from 'kysely';
import type { Database } from '../database.ts';
import { BerthError } from '../core/errors.ts';
import { countLiveBackendsOfAccount, lockAccountSpawns } from './account-quota.repository.ts';

/** One tenant must not take a whole node: a 429, since the caller may retry once backends end. */
export class AccountBackendLimitError extends BerthError {
  constructor(accountName: string, limit: number) {
    super(429, 'rate_limit_error', 'account_backend_limit', `account "${accountName}" already has ${limit} live backends, the most it may hold; terminate some first`, {
      details: { account: accountName, limit },
    });
  }
}

/** Call inside the transaction that inserts the new backend, after its key is locked. */
export async function checkAccountBackendLimit(trx: Transaction<Database>, accountName: string, limit: number): Promise<void> {
  await lockAccountSpawns(trx, accountName);
  if ((await countLiveBackendsOfAccount(trx, accountName)) >= limit) throw new AccountBackendLimitError(accountName, limit);
}
