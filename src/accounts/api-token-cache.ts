import type { ApiTokenRow } from './account.table.ts';

/** What authentication needs of a token row. */
export type CachedApiToken = Pick<ApiTokenRow, 'id' | 'account_name' | 'secret_hash' | 'is_admin'>;

/** How many token rows a process keeps; past it the cache starts over (tokens are few, callers fewer). */
const MAX_ENTRIES = 10_000;

/**
 * Token rows by id, for the one caller that checks a token's existence in its
 * own statement anyway (connect for a held key). A token row never changes:
 * it is inserted, then deleted on revocation, and ids are random and never
 * reused. So an entry can be stale in one way only, by having been revoked,
 * and that is what the caller's statement finds out (and then `forget`s it).
 */
export class ApiTokenCache {
  private readonly rows = new Map<string, CachedApiToken>();

  get(id: string): CachedApiToken | undefined {
    return this.rows.get(id);
  }

  remember(row: CachedApiToken): void {
    if (this.rows.size >= MAX_ENTRIES) this.rows.clear();
    this.rows.set(row.id, { id: row.id, account_name: row.account_name, secret_hash: row.secret_hash, is_admin: row.is_admin });
  }

  forget(id: string): void {
    this.rows.delete(id);
  }
}
