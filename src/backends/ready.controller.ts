import type { BerthContext, BerthRouter } from '../context.ts';
import { findReadyPage, renderReadyNotFound, renderReadyPage, type HtmlPage } from './ready-page.ts';

const BACKEND_ID = /^[a-z0-9]{1,64}$/;
const TOKEN = /^[A-Za-z0-9_-]{8,128}$/;

/** `ready_url`: a browser page, so every answer, a miss included, is HTML rather than JSON. */
export function readyController(router: BerthRouter): void {
  router.get('/ready/:id/:token{/}', async (ctx) => {
    const { id, token } = ctx.params;
    const { config, storage } = ctx.deps;
    const page = id && token && BACKEND_ID.test(id) && TOKEN.test(token) ? await findReadyPage(storage.db, config, id, token) : undefined;
    sendPage(ctx, page ? renderReadyPage(page, config.publicApiUrl) : renderReadyNotFound(config.publicApiUrl));
  });
}

function sendPage(ctx: BerthContext, page: HtmlPage): void {
  ctx.status = page.status;
  ctx.set(page.headers);
  ctx.body = page.body;
}
