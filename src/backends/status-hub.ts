import type { Storage } from '../database.ts';
import type { Logger } from '../core/logger.ts';
import { NotificationHub } from '../notification-hub.ts';
import type { StatusEvent } from '../core/backend-status.ts';
import { STATUS_CHANNEL } from './backend.repository.ts';
import type { BackendStatusRow } from './backend.table.ts';
import { statusRowToEvent } from './status-recorder.ts';

export type StatusListener = (event: StatusEvent) => void;

/** Every recorded status, as it is committed, keyed by backend id. */
export class StatusHub extends NotificationHub<StatusEvent> {
  static async create(storage: Storage, logger: Logger): Promise<StatusHub> {
    const hub = new StatusHub((payload) => statusRowToEvent(JSON.parse(payload) as BackendStatusRow), (event) => event.backendId, logger);
    await hub.listen(storage, STATUS_CHANNEL);
    return hub;
  }
}
