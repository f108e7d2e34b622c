import type { BerthContext, BerthMiddleware, BerthRouter } from '../context.ts';
import { principalOf, type AuthMiddleware } from '../http/auth.ts';
import { readJsonBody, sendJson } from '../http/json.ts';
import { openEventStream } from '../http/sse.ts';
import { nameParam, parseInput } from '../http/validation.ts';
import { DEFAULT_ENVIRONMENT } from '../services/service.service.ts';
import { statusEventToJson, statusEventToPublicJson, type StatusEvent } from '../core/backend-status.ts';
import { BACKENDS_QUERY, CONNECT_BODY, TERMINATE_BODY } from './backend.schemas.ts';
import { backendUrls } from './backend-urls.ts';
import type { ConnectOutcome } from '../metrics/prometheus.ts';
import { BackendNotFoundError, type Backend } from './backend.service.ts';
import { ApiTokenRevokedError } from '../accounts/account.service.ts';
import { authorizedBackend, backendIdParam } from './backend-params.ts';

const CORS = { 'Access-Control-Allow-Origin': '*' };

function allowCors(ctx: BerthContext): void {
  ctx.set(CORS);
}

export function backendController(router: BerthRouter, authenticated: AuthMiddleware): void {
  // Connect checks the token in the statement that serves a held key, so its principal may come from the cache.
  router.post('/v2/service/:account/:service{/:environment}/connect', authenticated.unchecked, async (ctx) => {
    const started = performance.now();
    let outcome: ConnectOutcome = 'error';
    try {
      outcome = await connect(ctx);
    } finally {
      ctx.deps.metrics.observeConnect(outcome, (performance.now() - started) / 1000);
    }
  });

  router.options(['/v2/backend/:id/status', '/v2/backend/:id/status/stream'], (ctx) => {
    ctx.set({ ...CORS, 'Access-Control-Allow-Methods': 'GET, OPTIONS', 'Access-Control-Allow-Headers': 'Last-Event-ID, Cache-Control', 'Access-Control-Max-Age': '86400' });
    ctx.status = 204;
  });

  router.get('/v2/backend/:id/status', async (ctx) => {
    allowCors(ctx);
    const event = await ctx.deps.backends.latestStatus(backendIdParam(ctx));
    sendJson(ctx, statusEventToPublicJson(event));
  });

  router.get('/v2/backend/:id/status/stream', async (ctx) => {
    allowCors(ctx);
    await streamStatuses(ctx, backendIdParam(ctx), Number(ctx.get('Last-Event-ID')) || 0);
  });

  router.get('/v2/backend/:id', authenticated, async (ctx) => {
    const backend = await authorizedBackend(ctx);
    const statuses = await ctx.deps.backends.statusHistory(backend.id);
    sendJson(ctx, { ...backendToJson(backend), statuses: statuses.map(statusEventToJson) });
  });

  router.post('/v2/backend/:id/terminate', authenticated, async (ctx) => {
    const backend = await authorizedBackend(ctx);
    const body = parseInput(TERMINATE_BODY, await readJsonBody(ctx), 'body');
    await ctx.deps.backends.terminate(backend, body.hard ?? false);
    sendJson(ctx, { status: 'ok' });
  });

  router.get('/v2/service/:account/:service/backends', authenticated, async (ctx) => {
    const account = nameParam(ctx.params, 'account');
    const service = nameParam(ctx.params, 'service');
    await ctx.deps.accounts.authorize(principalOf(ctx), account);
    const query = parseInput(BACKENDS_QUERY, { ...ctx.query }, 'query');
    const backends = await ctx.deps.backends.listServiceBackends(account, service, {
      ...(query.start ? { start: new Date(query.start) } : {}),
      ...(query.end ? { end: new Date(query.end) } : {}),
    });
    sendJson(ctx, {
      backends: backends.map((backend) => ({
        ...backendToJson(backend),
        ready_timestamp: backend.readyAt?.toISOString() ?? null,
        status: currentStatusJson(backend),
      })),
    });
  });

  router.get('/v2/account/:account/backends', authenticated, async (ctx) => {
    const account = nameParam(ctx.params, 'account');
    await ctx.deps.accounts.authorize(principalOf(ctx), account);
    const backends = await ctx.deps.backends.listRunningBackends(account);
    sendJson(ctx, {
      running_backends: backends.map((backend) => ({
        ...backendToJson(backend),
        status: currentStatusJson(backend),
      })),
    });
  });
}

/** Answers a connect; its outcome is what /metrics counts it as. */
async function connect(ctx: BerthContext): Promise<ConnectOutcome> {
  const account = nameParam(ctx.params, 'account');
  const service = nameParam(ctx.params, 'service');
  const environment = ctx.params.environment === undefined ? DEFAULT_ENVIRONMENT : nameParam(ctx.params, 'environment');
  const principal = principalOf(ctx);
  await ctx.deps.accounts.authorize(principal, account);
  const body = parseInput(CONNECT_BODY, await readJsonBody(ctx), 'body');
  const result = await ctx.deps.backends
    .connect(account, service, environment, body, principal.uncheckedTokenId ?? null)
    .catch((error: unknown) => {
      if (error instanceof ApiTokenRevokedError) ctx.deps.accounts.forgetToken(error.tokenId);
      throw error;
    });
  const urls = backendUrls(ctx.deps.config, result.backendId, result.token);
  sendJson(ctx, {
    backend_id: result.backendId,
    spawned: result.spawned,
    status: result.status,
    token: result.token,
    url: urls.url,
    secret_token: result.secretToken,
    status_url: urls.status_url,
    ready_url: urls.ready_url,
  });
  return result.spawned ? 'spawned' : 'joined';
}

/**
 * Replays the history after `resumeFrom`, then follows live events until the
 * backend is terminated. Subscribing before reading the history, and skipping
 * ids already sent, means no event falls between the two. The history is read
 * whole (a handful of rows): it also says whether the backend exists, and
 * whether a stream resumed after its last event has anything left to send.
 */
async function streamStatuses(ctx: BerthContext, backendId: string, resumeFrom: number): Promise<void> {
  let lastSent = resumeFrom;
  let replaying = true;
  const buffered: StatusEvent[] = [];
  const unsubscribe = ctx.deps.statusHub.subscribe(backendId, (event) => (replaying ? buffered.push(event) : send(event)));
  let history: StatusEvent[];
  try {
    history = await ctx.deps.backends.statusHistory(backendId);
  } catch (error) {
    unsubscribe();
    throw error;
  }
  // Gone while the history was read: its 'close' has fired, so a stream opened now would never end.
  if (ctx.req.destroyed || ctx.res.destroyed) {
    unsubscribe();
    return;
  }
  // Every backend has its `scheduled` row from the start.
  if (history.length === 0) {
    unsubscribe();
    throw new BackendNotFoundError(backendId);
  }
  // A browser's EventSource reconnects after the stream ends; 204 is what makes it stop for good.
  if (resumeFrom > 0 && history.at(-1)!.status === 'terminated' && history.at(-1)!.id <= resumeFrom) {
    unsubscribe();
    ctx.status = 204;
    return;
  }
  const stream = openEventStream(ctx, CORS);
  stream.onClose(unsubscribe);
  const send = (event: StatusEvent) => {
    if (event.id <= lastSent || stream.closed) return;
    lastSent = event.id;
    stream.send(JSON.stringify(statusEventToPublicJson(event)), event.id);
    if (event.status === 'terminated') stream.close();
  };
  for (const event of history) send(event);
  replaying = false;
  for (const event of buffered.splice(0)) send(event);
}

function backendToJson(backend: Backend) {
  return {
    account_name: backend.accountName,
    cluster_name: backend.cluster,
    created_at: backend.createdAt.toISOString(),
    environment_name: backend.environmentName,
    id: backend.id,
    image_digest: backend.imageDigest,
    key: backend.key,
    max_mem_bytes: backend.maxMemBytes,
    node: backend.nodeName,
    service_name: backend.serviceName,
  };
}

/** The same shape as GET /v2/backend/{id}/status. */
function currentStatusJson(backend: Backend): Record<string, unknown> {
  if (backend.latestStatus) return statusEventToPublicJson(backend.latestStatus);
  return { status: backend.status, time: backend.statusTime.toISOString() };
}
