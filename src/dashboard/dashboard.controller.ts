import type { BerthContext, BerthRouter } from '../context.ts';
import { NotFoundError } from '../core/errors.ts';
import { findDashboardFile, looksLikeFile } from './dashboard-files.ts';
import { dashboardHeaders, renderDashboardNotBuilt } from './dashboard-page.ts';

/**
 * The operator's dashboard: static files from the Vite build in `dashboardDir`.
 * Every page of the app (`/dashboard/backends/{id}`, …) answers index.html so a
 * reload or a shared link works; the app itself signs in with a token and
 * calls the API like any other client.
 */
export function dashboardController(router: BerthRouter, dashboardDir: string): void {
  router.get('/dashboard{/}', (ctx) => sendIndex(ctx, dashboardDir));

  router.get('/dashboard/*path', async (ctx) => {
    // path-to-regexp hands a wildcard over as its segments.
    const raw: unknown = ctx.params.path;
    const path = Array.isArray(raw) ? raw.join('/') : String(raw ?? '');
    if (!looksLikeFile(path)) return sendIndex(ctx, dashboardDir);
    const file = await findDashboardFile(dashboardDir, path);
    if (!file) throw new NotFoundError('asset_not_found', `the dashboard has no file ${path}`, { path });
    ctx.status = 200;
    ctx.set({
      'Content-Type': file.contentType,
      'Content-Length': String(file.size),
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    ctx.body = file.open();
  });
}

async function sendIndex(ctx: BerthContext, dashboardDir: string): Promise<void> {
  const index = await findDashboardFile(dashboardDir, 'index.html');
  if (!index) {
    ctx.status = 503;
    ctx.set(dashboardHeaders());
    ctx.body = renderDashboardNotBuilt();
    return;
  }
  ctx.status = 200;
  // no-cache, not no-store: the browser revalidates and so picks up a new build at once.
  ctx.set({ ...dashboardHeaders(), 'Content-Length': String(index.size), 'Cache-Control': 'no-cache' });
  ctx.body = index.open();
}
