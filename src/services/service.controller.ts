import type { BerthContext, BerthMiddleware, BerthRouter } from '../context.ts';
import { principalOf, requireAdmin } from '../http/auth.ts';
import { readJsonBody, sendJson } from '../http/json.ts';
import { nameParam, parseInput } from '../http/validation.ts';
import { CONTAINER_SETTINGS_BODY, CREATE_SERVICE_BODY, UPDATE_SERVICE_BODY } from './service.schemas.ts';
import { DEFAULT_ENVIRONMENT, type Service } from './service.service.ts';

/** The account and service named in the path, after checking the caller may act on them. */
async function authorizedService(ctx: BerthContext): Promise<{ account: string; service: string }> {
  const account = nameParam(ctx.params, 'account');
  const service = nameParam(ctx.params, 'service');
  await ctx.deps.accounts.authorize(principalOf(ctx), account);
  return { account, service };
}

export function serviceController(router: BerthRouter, authenticated: BerthMiddleware): void {
  router.post('/v2/account/:account/service', authenticated, async (ctx) => {
    const account = nameParam(ctx.params, 'account');
    const principal = principalOf(ctx);
    await ctx.deps.accounts.authorize(principal, account);
    const body = parseInput(CREATE_SERVICE_BODY, await readJsonBody(ctx), 'body');
    await ctx.deps.services.createService(account, body, { isAdmin: principal.isAdmin });
    sendJson(ctx, { status: 'ok' });
  });

  router.get('/v2/account/:account/services', authenticated, async (ctx) => {
    const account = nameParam(ctx.params, 'account');
    await ctx.deps.accounts.authorize(principalOf(ctx), account);
    sendJson(ctx, { services: await ctx.deps.services.listServiceNames(account) });
  });

  router.get('/v2/service/:account/:service', authenticated, async (ctx) => {
    const { account, service } = await authorizedService(ctx);
    sendJson(ctx, serviceToJson(await ctx.deps.services.getService(account, service)));
  });

  router.post('/v2/service/:account/:service/delete', authenticated, async (ctx) => {
    const { account, service } = await authorizedService(ctx);
    await ctx.deps.services.deleteService(account, service);
    sendJson(ctx, { status: 'ok' });
  });

  router.get('/v2/service/:account/:service/images', authenticated, async (ctx) => {
    const { account, service } = await authorizedService(ctx);
    const images = await ctx.deps.services.listImages(account, service);
    sendJson(ctx, {
      images: images.map((image) => ({
        digest: image.digest,
        tag: image.tag,
        repository: image.repository,
        upload_time: image.uploadTime.toISOString(),
      })),
    });
  });

  router.post('/v2/service/:account/:service{/:environment}/update', authenticated, async (ctx) => {
    const { account, service } = await authorizedService(ctx);
    const environment = ctx.params.environment === undefined ? DEFAULT_ENVIRONMENT : nameParam(ctx.params, 'environment');
    const body = parseInput(UPDATE_SERVICE_BODY, await readJsonBody(ctx), 'body');
    await ctx.deps.services.updateEnvironment(account, service, environment, {
      ...(body.image_tag !== undefined ? { imageTag: body.image_tag } : {}),
      ...(body.warm_pool_size !== undefined ? { warmPoolSize: body.warm_pool_size } : {}),
    });
    sendJson(ctx, { status: 'ok' });
  });

  router.post('/v2/service/:account/:service/container', authenticated, async (ctx) => {
    requireAdmin(ctx);
    const { account, service } = await authorizedService(ctx);
    const body = parseInput(CONTAINER_SETTINGS_BODY, await readJsonBody(ctx), 'body');
    await ctx.deps.services.updateContainerSettings(account, service, body);
    sendJson(ctx, { status: 'ok' });
  });

  router.get('/service/:account/:service/image-name', authenticated, async (ctx) => {
    const { account, service } = await authorizedService(ctx);
    sendJson(ctx, { status: 'ok', imageName: await ctx.deps.services.imageRepository(account, service) });
  });
}

function serviceToJson(service: Service) {
  return {
    account_name: service.accountName,
    created_at: service.createdAt.toISOString(),
    environments: service.environments.map((env) => ({
      name: env.name,
      image_tag: env.imageTag,
      cluster: env.cluster,
      created_at: env.createdAt.toISOString(),
      last_spawned_at: env.lastSpawnedAt?.toISOString() ?? null,
      warm_pool_size: env.warmPoolSize,
      // Not warmable: its image never spoke the session-backend SDK protocol (a new image is tried again).
      warm_pool: { warmable: env.notWarmable === null, ...(env.notWarmable !== null ? { reason: env.notWarmable } : {}) },
    })),
    image_name: service.imageRepository,
    container: { user: service.container.user, read_only_root: service.container.readOnlyRoot, cap_add: service.container.capAdd },
    last_image_digest: service.latestImage?.digest ?? null,
    last_image_upload_time: service.latestImage?.uploadTime.toISOString() ?? null,
    last_spawned_at: service.lastSpawnedAt?.toISOString() ?? null,
    name: service.name,
  };
}
