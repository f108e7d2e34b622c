import Router from '@koa/router';
import Koa, { type Middleware } from 'koa';
import { accountController } from './accounts/account.controller.ts';
import { backendController } from './backends/backend.controller.ts';
import { readyController } from './backends/ready.controller.ts';
import type { BerthConfig } from './config.ts';
import type { BerthContextExtras, BerthRouter, BerthState, Dependencies } from './context.ts';
import { dashboardController } from './dashboard/dashboard.controller.ts';
import { BerthError } from './core/errors.ts';
import { healthController } from './health/health.controller.ts';
import { logController } from './logs/log.controller.ts';
import { metricsController } from './metrics/metrics.controller.ts';
import { prometheusController } from './metrics/prometheus.controller.ts';
import { openApiController } from './openapi/openapi.controller.ts';
import { nodeController } from './nodes/node.controller.ts';
import { authenticated } from './http/auth.ts';
import { RateLimiter } from './http/rate-limit.ts';
import { handleRequests } from './http/request-handler.ts';
import { serviceController } from './services/service.controller.ts';

export function createApp(deps: Dependencies, envLoadedAt: Date): Koa<BerthState, BerthContextExtras> {
  const app = new Koa<BerthState, BerthContextExtras>({ proxy: false });
  app.context.deps = deps;
  // Errors are answered by handleRequests; Koa's own printing would duplicate them.
  app.silent = true;

  const router = createRouter(deps.config, envLoadedAt);
  app.use(handleRequests(deps.logger));
  app.use(collapseLeadingSlashes);
  app.use(router.routes());
  app.use(
    router.allowedMethods({
      throw: true,
      methodNotAllowed: () => new BerthError(405, 'method_not_allowed_error', 'method_not_allowed', 'method not allowed on this route'),
      // A method berth serves nowhere (TRACE, say) is as unsupported here as anywhere: 405, not 501.
      notImplemented: () => new BerthError(405, 'method_not_allowed_error', 'method_not_allowed', 'method not allowed on this route'),
    }),
  );
  return app;
}

/**
 * Every route of the API with its own middleware (auth included). Building it
 * touches nothing: handlers reach their dependencies through `ctx.deps` at
 * request time, so docs/endpoint-matrix.md can be checked against it.
 */
export function createRouter(config: Pick<BerthConfig, 'rateLimit' | 'rateLimitWindowMs' | 'dashboardDir'>, envLoadedAt: Date): BerthRouter {
  const router = new Router<BerthState, BerthContextExtras>();
  const auth = authenticated(new RateLimiter(config.rateLimit, config.rateLimitWindowMs));
  healthController(router, auth, envLoadedAt);
  accountController(router, auth);
  serviceController(router, auth);
  backendController(router, auth);
  logController(router, auth);
  metricsController(router, auth);
  prometheusController(router, auth);
  openApiController(router);
  nodeController(router, auth);
  readyController(router);
  dashboardController(router, config.dashboardDir);
  return router;
}

/**
 * The Jamsocket CLI appends `/v2/…` to JAMSOCKET_SERVER_API as it is, so a base
 * URL written with a trailing slash asks for `//v2/…`: route that as `/v2/…`.
 */
const collapseLeadingSlashes: Middleware<BerthState, BerthContextExtras> = (ctx, next) => {
  if (ctx.path.startsWith('//')) ctx.path = ctx.path.replace(/^\/{2,}/, '/');
  return next();
};
