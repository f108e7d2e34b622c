import type { BerthContext, BerthRouter } from '../context.ts';
import { findReadyPage, renderReadyNotFound, renderReadyPage, type HtmlPage } from './ready-page.ts';

/** What a ready_url's parts look like; anything else is answered with the not-found page without a lookup. */
export const READY_BACKEND_ID = /^[a-z0-9]{1,64}$/;
export const READY_TOKEN = /^[A-Za-z0-9_-]{8,128}$/;

/** `ready_url`: a browser page, so every answer, a miss included, is HTML rather than JSON. */
export function readyController(router: BerthRouter): void {
  router.get('/ready/:id/:token{/}', async (ctx) => {
    const { id, token } = ctx.params;
    const { config, storage } = ctx.deps;
    const page = id && token && READY_BACKEND_ID.test(id) && READY_TOKEN.test(token) ? await findReadyPage(storage.db, config, id, token) : undefined;
    sendPage(ctx, page ? renderReadyPage(page, config.publicApiUrl) : renderReadyNotFound(config.publicApiUrl));
  });
}

function sendPage(ctx: BerthContext, page: HtmlPage): void {
  ctx.status = page.status;
  ctx.set(page.headers);
  ctx.body = page.body;
}
