import { authorizedBackend } from '../backends/backend-params.ts';
import type { BerthContext, BerthMiddleware, BerthRouter } from '../context.ts';
import { openEventStream } from '../http/sse.ts';
import { listLogLines } from './log.repository.ts';

const PAGE = 1000;

export function logController(router: BerthRouter, authenticated: BerthMiddleware): void {
  router.get('/v2/backend/:id/logs/stream', authenticated, async (ctx) => {
    const backend = await authorizedBackend(ctx);
    streamLogs(ctx, backend.id, backend.status === 'terminated', Number(ctx.get('Last-Event-ID')) || 0);
  });
}

/**
 * Sends the stored lines, then each new batch as it is announced, and ends
 * once the backend has terminated and its last lines are sent (the scheduler
 * stores a container's final output before it records the exit).
 */
function streamLogs(ctx: BerthContext, backendId: string, terminated: boolean, resumeFrom: number): void {
  const { storage, logHub, statusHub, logger } = ctx.deps;
  const stream = openEventStream(ctx);
  let lastId = resumeFrom;
  let ending = terminated;
  let pumping: Promise<void> | undefined;
  let again = false;

  const drain = async () => {
    do {
      again = false;
      for (;;) {
        const rows = await listLogLines(storage.db, backendId, lastId, PAGE);
        for (const row of rows) stream.send(row.line, row.id);
        if (rows.length > 0) lastId = Number(rows.at(-1)!.id);
        if (rows.length < PAGE || stream.closed) break;
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
