import type { BerthRouter } from '../context.ts';
import { sendJson } from '../http/json.ts';
import { buildOpenApiDocument } from './openapi-document.ts';

export function openApiController(router: BerthRouter): void {
  // Built on first use: a process that is never asked does not pay for the conversion.
  let document: Record<string, unknown> | undefined;
  /** Public, like the Jamsocket API's own description: it names routes, never data. */
  router.get('/openapi.json', (ctx) => {
    document ??= buildOpenApiDocument();
    sendJson(ctx, { ...document, servers: [{ url: ctx.deps.config.publicApiUrl }] });
  });
}
