import type Router from '@koa/router';
import type { RouterContext, RouterMiddleware } from '@koa/router';
import type { Principal } from './accounts/account.service.ts';
import type { AccountService } from './accounts/account.service.ts';
import type { BackendService } from './backends/backend.service.ts';
import type { NodeService } from './nodes/node.service.ts';
import type { StatusHub } from './backends/status-hub.ts';
import type { LogHub } from './logs/log-hub.ts';
import type { BerthMetrics } from './metrics/prometheus.ts';
import type { EngineReader } from '../scheduler/engine.ts';
import type { MetricsHub } from './metrics/metrics-hub.ts';
import type { BerthConfig } from './config.ts';
import type { Storage } from './database.ts';
import type { HealthService } from './health/health.service.ts';
import type { Logger } from './core/logger.ts';
import type { ServiceService } from './services/service.service.ts';

/** What a request has learned about itself on the way in. */
export interface BerthState {
  requestId: string;
  /** Set by the `authenticated` middleware. */
  principal?: Principal;
}

/** Everything controllers may use; attached once to app.context. */
export interface Dependencies {
  config: BerthConfig;
  logger: Logger;
  storage: Storage;
  accounts: AccountService;
  services: ServiceService;
  health: HealthService;
  backends: BackendService;
  nodes: NodeService;
  statusHub: StatusHub;
  logHub: LogHub;
  /** This process's Prometheus metrics. */
  metrics: BerthMetrics;
  /** The engine, for reads that go to it directly (metrics). */
  engine: EngineReader;
  /** Metrics samples nodes announce for streamed backends. */
  metricsHub: MetricsHub;
}

export interface BerthContextExtras {
  deps: Dependencies;
}

export type BerthContext = RouterContext<BerthState, BerthContextExtras>;
export type BerthRouter = Router<BerthState, BerthContextExtras>;
export type BerthMiddleware = RouterMiddleware<BerthState, BerthContextExtras>;
