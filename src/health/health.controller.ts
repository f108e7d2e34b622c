import type { BerthMiddleware, BerthRouter } from '../context.ts';
import { requireAdmin } from '../http/auth.ts';
import { sendJson } from '../http/json.ts';
import { VERSION } from '../version.ts';

export function healthController(router: BerthRouter, authenticated: BerthMiddleware, envLoadedAt: Date): void {
  router.get('/healthcheck', (ctx) => sendJson(ctx, 'ok'));

  router.get('/v1/version', (ctx) => sendJson(ctx, { version: VERSION, env_reloaded_at: envLoadedAt.toISOString() }));

  router.get('/health/status', authenticated, async (ctx) => {
    requireAdmin(ctx);
    const report = await ctx.deps.health.report();
    sendJson(ctx, report, report.status === 'ok' ? 200 : 503);
  });
}
