import { randomUUID } from 'node:crypto';
import type { Logger } from '../src/core/logger.ts';

/** How often activity is written; well under any max_idle_seconds (at least 1 s). */
export const ACTIVITY_FLUSH_INTERVAL_MS = 1000;

/** One report of a proxy process: its heartbeat, what it touched and what it holds open. */
export interface ActivityReport {
  proxyId: string;
  at: Date;
  touched: readonly string[];
  open: ReadonlyMap<string, number>;
}

export interface ActivitySink {
  recordActivity(report: ActivityReport): Promise<void>;
  /** This proxy is going away: its open connections stop counting now rather than after its lease. */
  removeProxy(proxyId: string): Promise<void>;
}

/**
 * Counts open requests and WebSockets per backend in memory and, once per
 * interval, reports them with a heartbeat: one batched write, never one per
 * request. The sweeper, in whichever process it runs, reads only the
 * database: a backend that a live proxy holds open is never idle however late
 * the report, and a proxy whose heartbeat stops counts for no longer than its lease.
 */
export class ActivityTracker {
  /** Names this process in the proxies table. */
  readonly proxyId = randomUUID();
  private readonly open = new Map<string, number>();
  private seen = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly sink: ActivitySink,
    private readonly logger: Logger,
    private readonly intervalMs = ACTIVITY_FLUSH_INTERVAL_MS,
    /** Activity seen elsewhere for this proxy (the nginx edge): backends touched since the last call, with their open count. */
    private readonly elsewhere?: () => Promise<ReadonlyMap<string, number>>,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
    void this.flush();
  }

  /** A request or socket to the backend began; pair with `end`. */
  begin(backendId: string): void {
    this.open.set(backendId, (this.open.get(backendId) ?? 0) + 1);
    this.seen.add(backendId);
  }

  /** Closing counts too: a backend's idle time starts when its last connection ends. */
  end(backendId: string): void {
    this.seen.add(backendId);
    const count = (this.open.get(backendId) ?? 1) - 1;
    if (count > 0) this.open.set(backendId, count);
    else this.open.delete(backendId);
  }

  /** Open requests and sockets of a backend. */
  openCount(backendId: string): number {
    return this.open.get(backendId) ?? 0;
  }

  /** Reports what was seen since the last flush. One flush at a time; a tick that finds one running is skipped. */
  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  /** Stops the timer, writes what is left and leaves the proxies table. Idempotent. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flushing;
    await this.flush();
    await this.sink.removeProxy(this.proxyId).catch((error: unknown) => this.logger.warn({ err: error }, 'leaving the proxies table failed'));
  }

  private async write(): Promise<void> {
    const touched = this.seen;
    this.seen = new Set();
    for (const id of this.open.keys()) touched.add(id);
    const open = new Map(this.open);
    try {
      for (const [id, count] of (await this.elsewhere?.()) ?? []) {
        touched.add(id);
        if (count > 0) open.set(id, (open.get(id) ?? 0) + count);
      }
      await this.sink.recordActivity({ proxyId: this.proxyId, at: new Date(), touched: [...touched], open });
    } catch (error) {
      // Not fatal: the next flush retries, so that a backend never looks idle for a failed write.
      for (const id of touched) this.seen.add(id);
      this.logger.warn({ err: error, backends: touched.size }, 'recording proxy activity failed');
    }
  }
}
