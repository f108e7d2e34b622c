import type { Storage } from '../database.ts';
import type { Logger } from '../core/logger.ts';
import { NotificationHub } from '../notification-hub.ts';
import { LOG_CHANNEL } from './log.repository.ts';

/** "New log lines for backend X", from whichever berth process stored them. */
export class LogHub extends NotificationHub<string> {
  static async create(storage: Storage, logger: Logger): Promise<LogHub> {
    const hub = new LogHub((payload) => payload, (backendId) => backendId, logger);
    await hub.listen(storage, LOG_CHANNEL);
    return hub;
  }
}
