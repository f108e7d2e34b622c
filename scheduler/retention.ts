import type { Logger } from '../src/core/logger.ts';
import type { SchedulerStore } from './store.ts';

export interface BackendRetentionOptions {
  store: Pick<SchedulerStore, 'deleteExpiredBackends'>;
  /** How long a terminated backend stays readable (BERTH_BACKEND_RETENTION_SECONDS). */
  retentionMs: number;
  log: Logger;
  /** Pruning ends when it aborts (the scheduler stopping). */
  signal: AbortSignal;
}

/** Rows deleted per statement, so that one prune never holds a huge transaction (logs go with them). */
const PRUNE_BATCH = 500;
/** Checked at least this often, and at most once a second whatever the retention. */
const MAX_PRUNE_INTERVAL_MS = 60_000;
const MIN_PRUNE_INTERVAL_MS = 1_000;

/**
 * Deletes backends terminated longer ago than the retention, with their
 * statuses, connection tokens and logs (the foreign keys cascade), now and then
 * periodically. Key rows stay: a key's fencing token must keep rising across
 * every backend it is ever given to, so it outlives them.
 */
export function startBackendPruning(options: BackendRetentionOptions): void {
  const { store, retentionMs, log, signal } = options;
  if (signal.aborted) return;
  let running = false;
  const prune = async () => {
    if (running) return;
    running = true;
    try {
      let total = 0;
      for (;;) {
        const deleted = await store.deleteExpiredBackends(new Date(Date.now() - retentionMs), PRUNE_BATCH);
        total += deleted;
        if (deleted < PRUNE_BATCH || signal.aborted) break;
      }
      if (total > 0) log.info({ backends: total }, 'pruned terminated backends past their retention');
    } catch (error) {
      log.error({ err: error }, 'pruning terminated backends failed');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void prune(), Math.min(MAX_PRUNE_INTERVAL_MS, Math.max(MIN_PRUNE_INTERVAL_MS, retentionMs / 2)));
  signal.addEventListener('abort', () => clearInterval(timer), { once: true });
  void prune();
}
