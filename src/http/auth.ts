import type { Principal } from '../accounts/account.service.ts';
import type { BerthContext, BerthMiddleware } from '../context.ts';
import { ForbiddenError, UnauthorizedError } from '../core/errors.ts';
import { RateLimitedError, type RateLimiter } from './rate-limit.ts';

/**
 * Route middleware for every authenticated endpoint: resolves the bearer token
 * to a principal and applies the per-token rate limit, with its headers on
 * every response, errors included.
 */
export function authenticated(limiter: RateLimiter): BerthMiddleware {
  return async (ctx, next) => {
    const header = ctx.get('Authorization');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) {
      throw new UnauthorizedError(
        header ? 'invalid_authorization_header' : 'missing_token',
        header ? 'the Authorization header must be "Bearer <token>"' : 'this endpoint needs an Authorization: Bearer <token> header',
      );
    }
    const principal = await ctx.deps.accounts.authenticate(match[1]!);
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
