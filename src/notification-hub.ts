import type { Storage } from './database.ts';
import type { Logger } from './core/logger.ts';

export type NotificationListener<T> = (message: T) => void;

/**
 * Fans one database notification channel out inside a process: one LISTEN,
 * any number of subscribers, by key (a backend id) or for everything. Messages
 * written by another berth process on the same database arrive the same way.
 */
export class NotificationHub<T> {
  private readonly byKey = new Map<string, Set<NotificationListener<T>>>();
  private readonly everything = new Set<NotificationListener<T>>();
  private unlisten: (() => Promise<void>) | undefined;

  protected constructor(
    private readonly parse: (payload: string) => T,
    private readonly keyOf: (message: T) => string,
    private readonly logger: Logger,
  ) {}

  protected async listen(storage: Storage, channel: string): Promise<void> {
    this.unlisten = await storage.listen(channel, (payload) => this.dispatch(payload));
  }

  /** Listens to one key's messages, or to every message with `'*'`. */
  subscribe(key: string | '*', listener: NotificationListener<T>): () => void {
    if (key === '*') {
      this.everything.add(listener);
      return () => this.everything.delete(listener);
    }
    let listeners = this.byKey.get(key);
    if (!listeners) {
      listeners = new Set();
      this.byKey.set(key, listeners);
    }
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0) this.byKey.delete(key);
    };
  }

  async stop(): Promise<void> {
    await this.unlisten?.();
    this.unlisten = undefined;
  }

  private dispatch(payload: string): void {
    let message: T;
    try {
      message = this.parse(payload);
    } catch (error) {
      this.logger.error({ err: error, payload: payload.slice(0, 200) }, 'unreadable notification');
      return;
    }
    for (const listener of [...this.everything, ...(this.byKey.get(this.keyOf(message)) ?? [])]) {
      try {
        listener(message);
      } catch (error) {
        this.logger.error({ err: error }, 'notification listener failed');
      }
    }
  }
}
