import type { AccountService, Principal } from '../accounts/account.service.ts';
import type { BerthContext, BerthMiddleware } from '../context.ts';
import { ForbiddenError, UnauthorizedError } from '../core/errors.ts';
import { RateLimitedError, type RateLimiter } from './rate-limit.ts';

/** The middleware of `authenticated`, with its variant for routes that check the token themselves. */
export type AuthMiddleware = BerthMiddleware & {
  /**
   * The same, sharing the rate limiter, but the principal may come from the
   * process's token cache without a query (`AccountService.authenticateUnchecked`):
   * the route must then check in its own statement that
   * `principal.uncheckedTokenId` still exists. Connect for a held key does.
   */
  unchecked: BerthMiddleware;
};

/**
 * Route middleware for every authenticated endpoint: resolves the bearer token
 * to a principal (reading the token's row on every request) and applies the
 * per-token rate limit, with its headers on every response, errors included.
 */
export function authenticated(limiter: RateLimiter): AuthMiddleware {
  const checked = authenticator(limiter, (accounts, token) => accounts.authenticate(token));
  return Object.assign(checked, { unchecked: authenticator(limiter, (accounts, token) => accounts.authenticateUnchecked(token)) });
}

function authenticator(limiter: RateLimiter, authenticate: (accounts: AccountService, token: string) => Promise<Principal>): BerthMiddleware {
  return async (ctx, next) => {
    const header = ctx.get('Authorization');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) {
      throw new UnauthorizedError(
        header ? 'invalid_authorization_header' : 'missing_token',
        header ? 'the Authorization header must be "Bearer <token>"' : 'this endpoint needs an Authorization: Bearer <token> header',
      );
    }
    const principal = await authenticate(ctx.deps.accounts, match[1]!);
    const decision = limiter.take(principal.tokenId);
    ctx.set('X-RateLimit-Limit', String(decision.limit));
    ctx.set('X-RateLimit-Remaining', String(decision.remaining));
    ctx.set('X-RateLimit-Reset', String(decision.resetAt));
    if (!decision.allowed) throw new RateLimitedError(decision);
    ctx.state.principal = principal;
    await next();
  };
}

export function principalOf(ctx: BerthContext): Principal {
  const principal = ctx.state.principal;
  if (!principal) throw new Error('route is missing the authenticated middleware');
  return principal;
}

export function requireAdmin(ctx: BerthContext): void {
  if (!principalOf(ctx).isAdmin) throw new ForbiddenError('admin_required', 'this endpoint needs the admin token');
}
