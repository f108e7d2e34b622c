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
import { hashSecret, mintToken, parseToken, secretMatches } from './token.ts';

/** Who a request acts as. */
export interface Principal {
  tokenId: string;
  isAdmin: boolean;
  /** The account the token belongs to; null for admin tokens. */
  accountName: string | null;
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

export class AccountService {
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

  async authenticate(token: string): Promise<Principal> {
    const parsed = parseToken(token);
    if (!parsed) throw new UnauthorizedError('invalid_token', 'the token is malformed: expected <id>.<secret>');
    if (this.configuredAdminToken) {
      const admin = parseToken(this.configuredAdminToken);
      if (admin && admin.id === parsed.id) {
        if (secretMatches(parsed.secret, hashSecret(admin.secret))) {
          return { tokenId: parsed.id, isAdmin: true, accountName: null };
        }
        throw new UnauthorizedError('invalid_token', 'the token is not valid');
      }
    }
    const row = await findApiToken(this.db, parsed.id);
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
