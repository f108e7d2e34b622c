import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';
import type { ProxyMetrics } from '../../proxy/proxy-metrics.ts';
import { BACKEND_STATUSES, type BackendStatus, type StatusEvent } from '../core/backend-status.ts';
import type { Logger } from '../core/logger.ts';
import { StatusClassHistogram } from './status-class-histogram.ts';

export type ConnectOutcome = 'spawned' | 'joined' | 'error';
/** What an outage answered with 503 was an outage of. */
export type OutageComponent = 'database' | 'engine';

export interface BerthMetricsOptions {
  /** Read on each scrape: the database is the only place that knows every process's backends. */
  countBackendsByStatus(): Promise<Map<BackendStatus, number>>;
  logger: Logger;
}

/** Backends whose cold start is being timed; past this, the oldest are forgotten (they would end by their startup timeout anyway). */
const MAX_STARTS_TRACKED = 10_000;
const FAST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const COLD_START_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];

/**
 * berth's Prometheus metrics, one registry per Berth (tests run several in one
 * process, so prom-client's global registry is never used). Scraped at
 * `GET /metrics` (src/metrics/prometheus.controller.ts).
 */
export class BerthMetrics implements ProxyMetrics {
  readonly registry = new Registry();
  private readonly connects: Histogram<'outcome'>;
  private readonly coldStarts: Histogram;
  private readonly proxyRequests: StatusClassHistogram;
  private readonly activityWrites: Counter<'result'>;
  private readonly edgeRequests: Counter<'status_class'>;
  private readonly outages: Counter<'component'>;
  private readonly scheduledAt = new Map<string, number>();
  private openWebSockets: () => number = () => 0;

  constructor(options: BerthMetricsOptions) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'berth_' });
    this.connects = new Histogram({
      name: 'berth_connect_duration_seconds',
      help: 'Connect calls by outcome (spawned a backend, joined a running one, or error) and how long they took',
      labelNames: ['outcome'],
      buckets: FAST_BUCKETS,
      registers,
    });
    this.coldStarts = new Histogram({
      name: 'berth_backend_cold_start_seconds',
      help: 'From scheduled to ready, per backend whose scheduling this process heard',
      buckets: COLD_START_BUCKETS,
      registers,
    });
    const backends = new Gauge({
      name: 'berth_backends',
      help: 'Backends by current status, as stored in the database',
      labelNames: ['status'],
      registers,
      collect: async () => {
        try {
          const counts = await options.countBackendsByStatus();
          for (const status of BACKEND_STATUSES) backends.set({ status }, counts.get(status) ?? 0);
        } catch (error) {
          // A scrape during a database outage still shows the error counters; stale counts would mislead.
          backends.reset();
          options.logger.warn({ err: error }, 'counting backends for /metrics failed');
        }
      },
    });
    this.proxyRequests = new StatusClassHistogram(
      'berth_proxy_request_duration_seconds',
      'Proxied HTTP requests by status class and how long they took to answer',
      FAST_BUCKETS,
    );
    this.registry.registerMetric(this.proxyRequests as unknown as Metric);
    const webSockets: Gauge = new Gauge({
      name: 'berth_proxy_open_websockets',
      help: 'Upgrade (WebSocket) connections open through this process’s proxy',
      registers,
      collect: () => {
        webSockets.set(this.openWebSockets());
      },
    });
    this.activityWrites = new Counter({
      name: 'berth_proxy_activity_writes_total',
      help: 'Batched activity writes of the proxy, by result',
      labelNames: ['result'],
      registers,
    });
    this.edgeRequests = new Counter({
      name: 'berth_proxy_edge_requests_total',
      help: 'Requests and WebSockets the nginx edge (BERTH_PROXY_EDGE=nginx) forwarded itself, by status class; the rest are in berth_proxy_request_duration_seconds',
      labelNames: ['status_class'],
      registers,
    });
    this.outages = new Counter({
      name: 'berth_outage_errors_total',
      help: 'API requests answered 503 because the database or the container engine was unreachable',
      labelNames: ['component'],
      registers,
    });
    // Zeros from the start, so that rate() sees the first increase.
    for (const result of ['ok', 'error']) this.activityWrites.inc({ result }, 0);
    for (const component of ['database', 'engine']) this.outages.inc({ component }, 0);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  observeConnect(outcome: ConnectOutcome, seconds: number): void {
    this.connects.observe({ outcome }, seconds);
  }

  countOutage(component: OutageComponent): void {
    this.outages.inc({ component });
  }

  /** Fed every status event; times scheduled → ready. */
  observeStatus(event: StatusEvent): void {
    if (event.status === 'scheduled') {
      if (this.scheduledAt.size >= MAX_STARTS_TRACKED) this.scheduledAt.delete(this.scheduledAt.keys().next().value!);
      this.scheduledAt.set(event.backendId, event.time.getTime());
      return;
    }
    const scheduled = this.scheduledAt.get(event.backendId);
    if (scheduled === undefined) return;
    if (event.status === 'ready') this.coldStarts.observe(Math.max(0, event.time.getTime() - scheduled) / 1000);
    if (event.status === 'ready' || event.status === 'terminating' || event.status === 'hard-terminating' || event.status === 'terminated') {
      this.scheduledAt.delete(event.backendId);
    }
  }

  /** Where the open WebSocket count comes from, once this process runs a proxy. */
  countOpenWebSockets(read: () => number): void {
    this.openWebSockets = read;
  }

  observeRequest(statusClass: number, seconds: number): void {
    this.proxyRequests.observe(statusClass, seconds);
  }

  countEdgeRequests(statusClass: number, count: number): void {
    this.edgeRequests.inc({ status_class: `${statusClass}xx` }, count);
  }

  observeActivityWrite(failed: boolean): void {
    this.activityWrites.inc({ result: failed ? 'error' : 'ok' });
  }
}
