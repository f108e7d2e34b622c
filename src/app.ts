import Router from '@koa/router';
import Koa from 'koa';
import { accountController } from './accounts/account.controller.ts';
import { backendController } from './backends/backend.controller.ts';
import type { BerthContextExtras, BerthState, Dependencies } from './context.ts';
import { BerthError } from './errors.ts';
import { healthController } from './health/health.controller.ts';
import { authenticated } from './http/auth.ts';
import { RateLimiter } from './http/rate-limit.ts';
import { handleRequests } from './http/request-handler.ts';
import { serviceController } from './services/service.controller.ts';

export function createApp(deps: Dependencies, envLoadedAt: Date): Koa<BerthState, BerthContextExtras> {
  const app = new Koa<BerthState, BerthContextExtras>({ proxy: false });
  app.context.deps = deps;
  // Errors are answered by handleRequests; Koa's own printing would duplicate them.
  app.silent = true;

  const router = new Router<BerthState, BerthContextExtras>();
  const auth = authenticated(new RateLimiter(deps.config.rateLimit, deps.config.rateLimitWindowMs));
  healthController(router, auth, envLoadedAt);
  accountController(router, auth);
  serviceController(router, auth);
  backendController(router, auth);

  app.use(handleRequests(deps.logger));
  app.use(router.routes());
  app.use(
    router.allowedMethods({
      throw: true,
      methodNotAllowed: () => new BerthError(405, 'method_not_allowed_error', 'method_not_allowed', 'method not allowed on this route'),
      notImplemented: () => new BerthError(501, 'invalid_request_error', 'not_implemented', 'method not implemented'),
    }),
  );
  return app;
}
