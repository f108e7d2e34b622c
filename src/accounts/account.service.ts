import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';
import { ConflictError, ForbiddenError, NotFoundError, UnauthorizedError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import {
  deleteApiToken,
  findAccount,
  findApiToken,
  hasAdminToken,
  insertAccount,
  insertApiToken,
  listAccountNames,
} from './account.repository.ts';
import { ApiTokenCache, type CachedApiToken } from './api-token-cache.ts';
import { hashSecret, mintToken, parseToken, secretMatches } from './token.ts';

/** Who a request acts as. */
export interface Principal {
  tokenId: string;
  isAdmin: boolean;
  /** The account the token belongs to; null for admin tokens. */
  accountName: string | null;
  /**
   * Set by `authenticateUnchecked`: the stored token this principal rests on,
   * whose existence (it may have been revoked since it was cached) the caller
   * still has to check. Absent when the token was read on the way in, or is
   * BERTH_ADMIN_TOKEN (which has no row).
   */
  uncheckedTokenId?: string;
}

export interface Account {
  name: string;
  createdAt: Date;
}

export class AccountNotFoundError extends NotFoundError {
  constructor(name: string) {
    super('account_not_found', `account "${name}" does not exist`, { account: name });
  }
}

/** The caller's token was revoked after this process cached it: answered as any invalid token. */
export class ApiTokenRevokedError extends UnauthorizedError {
  constructor(readonly tokenId: string) {
    super('invalid_token', 'the token is not valid');
  }
}

export class AccountService {
  private readonly tokenCache = new ApiTokenCache();

  constructor(
    private readonly db: Kysely<Database>,
    /** BERTH_ADMIN_TOKEN; when set it is the only admin token. */
    private readonly configuredAdminToken: string | undefined,
  ) {}

  /**
   * Makes sure an admin can log in. With BERTH_ADMIN_TOKEN set there is nothing
   * to do; otherwise the first start generates a token and returns it so that
   * it can be printed once. Later starts return undefined.
   */
  async bootstrapAdmin(logger: Logger): Promise<string | undefined> {
    if (this.configuredAdminToken) return undefined;
    if (await hasAdminToken(this.db)) return undefined;
    const minted = mintToken();
    await insertApiToken(this.db, {
      id: minted.id,
      account_name: null,
      secret_hash: hashSecret(minted.secret),
      is_admin: true,
    });
    logger.info({ token_id: minted.id }, 'generated the admin token');
    return minted.token;
  }

  /** Resolves a bearer token to its principal; reads the token's row (one query) unless it is BERTH_ADMIN_TOKEN. */
  async authenticate(token: string): Promise<Principal> {
    const parsed = this.parse(token);
    return this.configuredAdmin(parsed) ?? this.principalOf(parsed, await findApiToken(this.db, parsed.id));
  }

  /**
   * Like `authenticate`, but answers from this process's cache of token rows
   * when it can, with no query: the principal then carries `uncheckedTokenId`,
   * and the caller must check in its own statement that the token still
   * exists (connect for a held key does, in the statement that mints the
   * connection token), so that a revocation takes effect on the next request
   * in every API process. A cached row is stale only when revoked: token rows
   * never change.
   */
  async authenticateUnchecked(token: string): Promise<Principal> {
    const parsed = this.parse(token);
    const admin = this.configuredAdmin(parsed);
    if (admin) return admin;
    const cached = this.tokenCache.get(parsed.id);
    if (cached) return { ...this.principalOf(parsed, cached), uncheckedTokenId: cached.id };
    const row = await findApiToken(this.db, parsed.id);
    const principal = this.principalOf(parsed, row);
    if (row) this.tokenCache.remember(row);
    return { ...principal, uncheckedTokenId: parsed.id };
  }

  /** Drops a token from the cache: the caller found it revoked. */
  forgetToken(tokenId: string): void {
    this.tokenCache.forget(tokenId);
  }

  private parse(token: string): { id: string; secret: string } {
    const parsed = parseToken(token);
    if (!parsed) throw new UnauthorizedError('invalid_token', 'the token is malformed: expected <id>.<secret>');
    return parsed;
  }

  /** The principal of BERTH_ADMIN_TOKEN when the token has its id; undefined for any other id. */
  private configuredAdmin(parsed: { id: string; secret: string }): Principal | undefined {
    if (!this.configuredAdminToken) return undefined;
    const admin = parseToken(this.configuredAdminToken);
    if (!admin || admin.id !== parsed.id) return undefined;
    if (!secretMatches(parsed.secret, hashSecret(admin.secret))) throw new UnauthorizedError('invalid_token', 'the token is not valid');
    return { tokenId: parsed.id, isAdmin: true, accountName: null };
  }

  private principalOf(parsed: { id: string; secret: string }, row: CachedApiToken | undefined): Principal {
    // A generated admin token is superseded once BERTH_ADMIN_TOKEN is set.
    const superseded = row?.is_admin === true && this.configuredAdminToken !== undefined;
    if (!row || superseded || !secretMatches(parsed.secret, row.secret_hash)) {
      throw new UnauthorizedError('invalid_token', 'the token is not valid');
    }
    return { tokenId: row.id, isAdmin: row.is_admin, accountName: row.account_name };
  }

  async createAccount(name: string): Promise<Account> {
    const row = await insertAccount(this.db, name);
    if (!row) throw new ConflictError('account_exists', `account "${name}" already exists`, { account: name });
    return { name: row.name, createdAt: row.created_at };
  }

  async requireAccount(name: string): Promise<Account> {
    const row = await findAccount(this.db, name);
    if (!row) throw new AccountNotFoundError(name);
    return { name: row.name, createdAt: row.created_at };
  }

  async createToken(accountName: string): Promise<string> {
    await this.requireAccount(accountName);
    const minted = mintToken();
    await insertApiToken(this.db, {
      id: minted.id,
      account_name: accountName,
      secret_hash: hashSecret(minted.secret),
      is_admin: false,
    });
    return minted.token;
  }

  async revokeToken(accountName: string, tokenId: string): Promise<void> {
    await this.requireAccount(accountName);
    if (!(await deleteApiToken(this.db, accountName, tokenId))) {
      throw new NotFoundError('token_not_found', `account "${accountName}" has no token "${tokenId}"`, {
        token_id: tokenId,
      });
    }
    this.tokenCache.forget(tokenId);
  }

  /** The accounts a principal may act on. */
  async visibleAccounts(principal: Principal): Promise<string[]> {
    if (principal.isAdmin) return listAccountNames(this.db);
    return principal.accountName ? [principal.accountName] : [];
  }

  /** Throws unless the principal may act on the account (which must exist). */
  async authorize(principal: Principal, accountName: string): Promise<void> {
    if (!principal.isAdmin && principal.accountName !== accountName) {
      throw new ForbiddenError('account_mismatch', `this token cannot act on account "${accountName}"`);
    }
    // An account token proves its account exists (tokens go with their account); only the admin's needs a look.
    if (principal.isAdmin) await this.requireAccount(accountName);
  }

}
