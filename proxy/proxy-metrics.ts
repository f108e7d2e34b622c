import type { ServerResponse } from 'node:http';
import type { ActivityReport, ActivitySink } from './activity.ts';

/**
 * What the proxy tells whoever counts for it (src/metrics/prometheus.ts).
 * Called on the hot path: implementations must not allocate.
 */
export interface ProxyMetrics {
  /** One answered request: `statusClass` is the status divided by 100 (2 for 2xx), `seconds` from arrival to the last byte. */
  observeRequest(statusClass: number, seconds: number): void;
  /** One batched activity write, once a second. */
  observeActivityWrite(failed: boolean): void;
  /** Requests (and WebSockets) the nginx edge answered itself since the last report, of one status class. */
  countEdgeRequests(statusClass: number, count: number): void;
}

/** The sink, with each write counted. */
export function countActivityWrites(sink: ActivitySink, metrics: ProxyMetrics): ActivitySink {
  return {
    recordActivity: (report: ActivityReport) =>
      sink.recordActivity(report).then(
        () => metrics.observeActivityWrite(false),
        (error: unknown) => {
          metrics.observeActivityWrite(true);
          throw error;
        },
      ),
    removeProxy: (proxyId) => sink.removeProxy(proxyId),
  };
}

const STARTED_AT = Symbol('berth.proxy.startedAt');
type TimedResponse = ServerResponse & { [STARTED_AT]: number };

/**
 * Returns what times each response: one listener function shared by every
 * response (it reads the response as `this`), so timing adds no closure per request.
 */
export function responseTimer(metrics: ProxyMetrics): (res: ServerResponse) => void {
  const observe = function (this: TimedResponse): void {
    metrics.observeRequest((this.statusCode / 100) | 0, (performance.now() - this[STARTED_AT]) / 1000);
  };
  return (res) => {
    (res as TimedResponse)[STARTED_AT] = performance.now();
    res.on('finish', observe);
  };
}
