import type { BerthMiddleware, BerthRouter } from '../context.ts';
import { requireAdmin } from '../http/auth.ts';

export function prometheusController(router: BerthRouter, authenticated: BerthMiddleware): void {
  /** Prometheus text exposition of this process's metrics; admin only, since backend counts span every account. */
  router.get('/metrics', authenticated, async (ctx) => {
    requireAdmin(ctx);
    const { metrics } = ctx.deps;
    ctx.set('Content-Type', metrics.contentType);
    ctx.body = await metrics.render();
  });
}
