import type { Kysely } from 'kysely';
import { imagesOfRepository, type EngineImage, type EngineReader, type ImageInfo, type ImageReferences, type MetricsSample, type StatsTarget } from '../../scheduler/engine.ts';
import type { Database } from '../database.ts';
import type { MetricsHub } from '../metrics/metrics-hub.ts';
import { metricsSampleFromJson } from '../metrics/metrics-sample.ts';
import { findLiveEngines, listLiveNodeImages, watchMetrics } from './node.repository.ts';

/** How long one watch lasts; the stream renews it well before. */
const WATCH_MS = 15_000;
const RENEW_MS = 5_000;
/** A node samples about once a second: none for this long means no node is sampling it. */
const FIRST_SAMPLE_TIMEOUT_MS = 10_000;

export interface NodeCatalogOptions {
  db: Kysely<Database>;
  metrics: MetricsHub;
  leaseMs: number;
}

/**
 * The engines as an API process without one sees them: through the nodes.
 * Images are what the live nodes reported with their last heartbeat (so an
 * image loaded on a node shows within one heartbeat), health is whether a live
 * node's engine answered, and metrics are sampled by the backend's node while
 * a stream watches it, announced through the database.
 */
export class NodeCatalog implements EngineReader {
  constructor(private readonly options: NodeCatalogOptions) {}

  async ping(): Promise<void> {
    const engines = await findLiveEngines(this.options.db, this.liveSince());
    if (engines.ok === 0) throw Object.assign(new Error(engines.error ?? 'no live node reports an engine that answers'), { code: 'ECONNREFUSED' });
  }

  async listRepositoryImages(repository: string): Promise<ImageInfo[]> {
    return imagesOfRepository(await this.images(), repository);
  }

  async imageReferences(reference: string): Promise<ImageReferences | undefined> {
    const found = (await this.images()).find(
      (image) => image.id === reference || image.repoDigests.includes(reference) || image.repoTags.includes(reference),
    );
    return found && { id: found.id, repoTags: found.repoTags, repoDigests: found.repoDigests };
  }

  async *streamStats(target: StatsTarget, signal: AbortSignal): AsyncGenerator<MetricsSample> {
    const queue: MetricsSample[] = [];
    let wake: (() => void) | undefined;
    const unsubscribe = this.options.metrics.subscribe(target.backendId, (sample) => {
      queue.push(metricsSampleFromJson(sample));
      wake?.();
    });
    const renew = () => watchMetrics(this.options.db, target.backendId, new Date(Date.now() + WATCH_MS));
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort);
    let renewal: NodeJS.Timeout | undefined;
    try {
      await renew();
      renewal = setInterval(() => void renew().catch(() => undefined), RENEW_MS);
      let received = 0;
      while (!signal.aborted) {
        const sample = queue.shift();
        if (sample) {
          received++;
          yield sample;
          continue;
        }
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await new Promise<boolean>((resolve) => {
          wake = () => resolve(false);
          if (received === 0) timer = setTimeout(() => resolve(true), FIRST_SAMPLE_TIMEOUT_MS);
        });
        clearTimeout(timer);
        wake = undefined;
        if (timedOut) {
          throw Object.assign(new Error(`no node sampled backend ${target.backendId} within ${FIRST_SAMPLE_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' });
        }
      }
    } finally {
      clearInterval(renewal);
      signal.removeEventListener('abort', onAbort);
      unsubscribe();
    }
  }

  private images(): Promise<EngineImage[]> {
    return listLiveNodeImages(this.options.db, this.liveSince());
  }

  private liveSince(): Date {
    return new Date(Date.now() - this.options.leaseMs);
  }
}
