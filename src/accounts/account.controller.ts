import type { BerthMiddleware, BerthRouter } from '../context.ts';
import { principalOf, requireAdmin } from '../http/auth.ts';
import { sendJson, readJsonBody } from '../http/json.ts';
import { nameParam, parseInput } from '../http/validation.ts';
import { CREATE_ACCOUNT_BODY, CREATE_TOKEN_BODY, TOKEN_ID } from './account.schemas.ts';

export function accountController(router: BerthRouter, authenticated: BerthMiddleware): void {
  router.get('/auth', authenticated, async (ctx) => {
    const principal = principalOf(ctx);
    sendJson(ctx, {
      status: 'ok',
      accounts: await ctx.deps.accounts.visibleAccounts(principal),
      is_admin: principal.isAdmin,
    });
  });

  router.post('/v2/accounts', authenticated, async (ctx) => {
    requireAdmin(ctx);
    const { name } = parseInput(CREATE_ACCOUNT_BODY, await readJsonBody(ctx), 'body');
    const account = await ctx.deps.accounts.createAccount(name);
    sendJson(ctx, { status: 'ok', name: account.name, created_at: account.createdAt.toISOString() }, 201);
  });

  router.post('/v2/account/:account/tokens', authenticated, async (ctx) => {
    requireAdmin(ctx);
    const account = nameParam(ctx.params, 'account');
    parseInput(CREATE_TOKEN_BODY, await readJsonBody(ctx), 'body');
    const token = await ctx.deps.accounts.createToken(account);
    sendJson(ctx, { status: 'ok', token, id: token.split('.')[0] }, 201);
  });

  router.delete('/v2/account/:account/tokens/:id', authenticated, async (ctx) => {
    requireAdmin(ctx);
    const account = nameParam(ctx.params, 'account');
    const id = parseInput(TOKEN_ID, ctx.params.id, 'id');
    await ctx.deps.accounts.revokeToken(account, id);
    sendJson(ctx, { status: 'ok' });
  });
}
