import { z } from 'zod';
import { authorizedBackend } from '../backends/backend-params.ts';
import type { BerthContext, BerthMiddleware, BerthRouter } from '../context.ts';
import { openEventStream } from '../http/sse.ts';
import { parseInput } from '../http/validation.ts';
import { listLogLines } from './log.repository.ts';

/** Rows read at once: with lines of at most 16 KiB, a page costs at most a few MiB while its reader is slow. */
const PAGE = 200;

/**
 * Berth's own parameters: `follow=false`, the stored lines only, then the
 * stream ends; `format=json`, each event `{time, stream, line}` instead of the
 * bare line (Jamsocket's shape, the default). Other parameters are ignored, as before.
 */
export const LOGS_QUERY = z.object({ follow: z.enum(['true', 'false']).optional(), format: z.enum(['text', 'json']).optional() });

export function logController(router: BerthRouter, authenticated: BerthMiddleware): void {
  router.get('/v2/backend/:id/logs/stream', authenticated, async (ctx) => {
    const backend = await authorizedBackend(ctx);
    const query = parseInput(LOGS_QUERY, { ...ctx.query }, 'query');
    const follow = query.follow !== 'false' && backend.status !== 'terminated';
    streamLogs(ctx, backend.id, !follow, Number(ctx.get('Last-Event-ID')) || 0, query.format === 'json');
  });
}

/**
 * Sends the stored lines, then each new batch as it is announced, and ends
 * once the backend has terminated and its last lines are sent (the scheduler
 * stores a container's final output before it records the exit). With
 * `endAfterStored` it ends as soon as the stored lines are sent.
 */
function streamLogs(ctx: BerthContext, backendId: string, endAfterStored: boolean, resumeFrom: number, asJson: boolean): void {
  const { storage, logHub, statusHub, logger } = ctx.deps;
  const stream = openEventStream(ctx);
  let lastId = resumeFrom;
  let ending = endAfterStored;
  let pumping: Promise<void> | undefined;
  let again = false;

  const drain = async () => {
    do {
      again = false;
      for (;;) {
        const rows = await listLogLines(storage.db, backendId, lastId, PAGE);
        for (const row of rows) {
          const data = asJson ? JSON.stringify({ time: new Date(row.time).toISOString(), stream: row.stream, line: row.line }) : row.line;
          const behind = !stream.send(data, row.id);
          lastId = Number(row.id);
          // A reader that is behind holds up the reading of further rows, never berth's memory.
          if (behind) await stream.drained();
          if (stream.closed) return;
        }
        if (rows.length < PAGE) break;
      }
    } while (again && !stream.closed);
    if (ending) stream.close();
  };
  const pump = () => {
    if (stream.closed) return;
    if (pumping) {
      again = true;
      return;
    }
    pumping = drain()
      .catch((error: unknown) => {
        logger.error({ err: error, backend_id: backendId }, 'log stream failed');
        stream.close();
      })
      .finally(() => {
        pumping = undefined;
        if (again) pump();
      });
  };

  const unsubscribeLogs = logHub.subscribe(backendId, pump);
  const unsubscribeStatus = statusHub.subscribe(backendId, (event) => {
    if (event.status !== 'terminated') return;
    ending = true;
    pump();
  });
  stream.onClose(() => {
    unsubscribeLogs();
    unsubscribeStatus();
  });
  pump();
}
