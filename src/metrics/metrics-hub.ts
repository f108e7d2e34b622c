import type { Storage } from '../database.ts';
import type { Logger } from '../core/logger.ts';
import { NotificationHub } from '../notification-hub.ts';
import { METRICS_CHANNEL } from '../nodes/node.repository.ts';
import type { MetricsSampleJson } from './metrics-sample.ts';

/** Metrics samples of watched backends, as their nodes announce them. */
export class MetricsHub extends NotificationHub<MetricsSampleJson> {
  static async create(storage: Storage, logger: Logger): Promise<MetricsHub> {
    const hub = new MetricsHub((payload) => JSON.parse(payload) as MetricsSampleJson, (sample) => sample.backend_id, logger);
    await hub.listen(storage, METRICS_CHANNEL);
    return hub;
  }
}
