import type { Storage } from '../database.ts';
import type { Logger } from '../logger.ts';
import type { StatusEvent } from './backend-status.ts';
import { STATUS_CHANNEL } from './backend.repository.ts';
import type { BackendStatusRow } from './backend.table.ts';
import { statusRowToEvent } from './status-recorder.ts';

export type StatusListener = (event: StatusEvent) => void;

/**
 * Fans the database's status notifications out inside one process: one LISTEN
 * per process, any number of streams, caches and schedulers subscribed. Events
 * written by another berth process on the same database arrive the same way.
 */
export class StatusHub {
  private readonly byBackend = new Map<string, Set<StatusListener>>();
  private readonly everything = new Set<StatusListener>();
  private unlisten: (() => Promise<void>) | undefined;

  private constructor(private readonly logger: Logger) {}

  static async create(storage: Storage, logger: Logger): Promise<StatusHub> {
    const hub = new StatusHub(logger);
    hub.unlisten = await storage.listen(STATUS_CHANNEL, (payload) => hub.dispatch(payload));
    return hub;
  }

  /** Listens to one backend's events, or to every backend's with `'*'`. */
  subscribe(backendId: string | '*', listener: StatusListener): () => void {
    if (backendId === '*') {
      this.everything.add(listener);
      return () => this.everything.delete(listener);
    }
    let listeners = this.byBackend.get(backendId);
    if (!listeners) {
      listeners = new Set();
      this.byBackend.set(backendId, listeners);
    }
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0) this.byBackend.delete(backendId);
    };
  }

  async stop(): Promise<void> {
    await this.unlisten?.();
    this.unlisten = undefined;
  }

  private dispatch(payload: string): void {
    let event: StatusEvent;
    try {
      event = statusRowToEvent(JSON.parse(payload) as BackendStatusRow);
    } catch (error) {
      this.logger.error({ err: error, payload }, 'unreadable status notification');
      return;
    }
    for (const listener of [...this.everything, ...(this.byBackend.get(event.backendId) ?? [])]) {
      try {
        listener(event);
      } catch (error) {
        this.logger.error({ err: error, backend_id: event.backendId }, 'status listener failed');
      }
    }
  }
}
