import type { MetricsSample } from '../../scheduler/engine.ts';
import { isEngineUnreachable } from '../../scheduler/engine.ts';
import { authorizedBackend } from '../backends/backend-params.ts';
import { BackendNotRunningError } from '../backends/backend.service.ts';
import { raiseMaxMemory } from '../backends/backend.repository.ts';
import type { BerthMiddleware, BerthRouter } from '../context.ts';
import { ConflictError } from '../core/errors.ts';
import { openEventStream } from '../http/sse.ts';
import { metricsSampleToClientJson } from './metrics-sample.ts';
import { DockerUnavailableError } from '../core/errors.ts';

export function metricsController(router: BerthRouter, authenticated: BerthMiddleware): void {
  /** The engine's stats of the backend's container, about one sample a second, until it stops. */
  router.get('/v2/backend/:id/metrics/stream', authenticated, async (ctx) => {
    const backend = await authorizedBackend(ctx);
    if (backend.status === 'terminated') throw new BackendNotRunningError(backend.id);
    if (!backend.containerId) {
      throw new ConflictError('backend_not_started', `backend "${backend.id}" has no container yet; retry once it is running`, {
        backend_id: backend.id,
        status: backend.status,
      });
    }
    const { engine, storage, logger } = ctx.deps;
    const abort = new AbortController();
    try {
      const samples = engine.streamStats({ backendId: backend.id, containerId: backend.containerId }, abort.signal);
      // Pull the first sample before answering, so a dead engine is a 503, not an empty stream.
      const first = await samples.next();
      const stream = openEventStream(ctx);
      stream.onClose(() => abort.abort());
      let peak = 0;
      const send = async (sample: MetricsSample) => {
        stream.send(JSON.stringify(metricsSampleToClientJson(backend.id, sample)));
        if (sample.memPeak > peak) {
          peak = sample.memPeak;
          await raiseMaxMemory(storage.db, backend.id, peak);
        }
      };
      void (async () => {
        if (!first.done) await send(first.value);
        for await (const sample of samples) await send(sample);
      })()
        .catch((error: unknown) => logger.warn({ err: error, backend_id: backend.id }, 'metrics stream failed'))
        .finally(() => stream.close());
    } catch (error) {
      abort.abort();
      if (isEngineUnreachable(error)) throw new DockerUnavailableError(error);
      throw error;
    }
  });
}
