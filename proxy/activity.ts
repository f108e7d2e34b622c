import type { Logger } from '../src/logger.ts';

/** How often activity is written; well under any max_idle_seconds (at least 1 s). */
export const ACTIVITY_FLUSH_INTERVAL_MS = 1000;

export interface ActivitySink {
  recordActivity(backendIds: readonly string[], at: Date): Promise<void>;
}

/**
 * Counts open requests and WebSockets per backend in memory and, once per
 * interval, writes last_activity_at = now for every backend that had one open
 * or started one meanwhile: one batched UPDATE, never one per request. The
 * sweeper, in whichever process it runs, reads only the database.
 */
export class ActivityTracker {
  private readonly open = new Map<string, number>();
  private seen = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly sink: ActivitySink,
    private readonly logger: Logger,
    private readonly intervalMs = ACTIVITY_FLUSH_INTERVAL_MS,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
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

  /** Writes what was seen since the last flush. One flush at a time; a tick that finds one running is skipped. */
  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  /** Stops the timer and writes what is left. Idempotent. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flushing;
    await this.flush();
  }

  private async write(): Promise<void> {
    const active = this.seen;
    this.seen = new Set();
    for (const id of this.open.keys()) active.add(id);
    if (active.size === 0) return;
    try {
      await this.sink.recordActivity([...active], new Date());
    } catch (error) {
      // Not fatal: the next flush retries, so that a backend never looks idle for a failed write.
      for (const id of active) this.seen.add(id);
      this.logger.warn({ err: error, backends: active.size }, 'recording proxy activity failed');
    }
  }
}
