import type { Generated, Selectable } from 'kysely';
import type { LogStreamName } from '../../scheduler/engine.ts';

export interface BackendLogTable {
  /** Rising id; the SSE event id of the line. */
  id: Generated<string | number>;
  backend_id: string;
  time: Date;
  stream: LogStreamName;
  line: string;
}

export type BackendLogRow = Selectable<BackendLogTable>;
