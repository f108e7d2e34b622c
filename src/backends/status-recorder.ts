import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../database.ts';
import { isForward, type BackendStatus, type StatusDetails, type StatusEvent } from '../core/backend-status.ts';
import { insertStatusRow, lockBackend } from './backend.repository.ts';
import type { BackendStatusRow } from './backend.table.ts';

/**
 * Records lifecycle steps. Each step is a row with its time, written only when
 * it moves the backend forward, and announced to every berth process through
 * NOTIFY in the same transaction.
 */
export class StatusRecorder {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Resolves to the recorded event, or undefined when the step would not move
   * the backend forward. `alongside` runs in the same transaction, with the
   * backend locked, whether or not the step is recorded: one round trip for a
   * step and the facts that come with it.
   */
  async record(
    backendId: string,
    status: BackendStatus,
    details: StatusDetails = {},
    alongside?: (trx: Transaction<Database>) => Promise<void>,
  ): Promise<StatusEvent | undefined> {
    return this.recordSteps(backendId, [{ status, details }], alongside);
  }

  /**
   * Several steps in one transaction, each its own row and event, in order;
   * stops at the first that would not move the backend forward. Resolves to the
   * last event recorded if every step was, else undefined.
   */
  async recordSteps(
    backendId: string,
    steps: ReadonlyArray<{ status: BackendStatus; details?: StatusDetails }>,
    alongside?: (trx: Transaction<Database>) => Promise<void>,
  ): Promise<StatusEvent | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const backend = await lockBackend(trx, backendId);
      if (backend && alongside) await alongside(trx);
      if (!backend) return undefined;
      let current = backend.status;
      let last: StatusEvent | undefined;
      for (const { status, details = {} } of steps) {
        if (!isForward(current, status)) return undefined;
        const row = await insertStatusRow(trx, {
          backend_id: backendId,
          status,
          time: new Date(),
          last_status: current,
          termination_reason: details.terminationReason ?? null,
          termination_kind: details.terminationKind ?? null,
          exit_error: details.exitError ?? null,
          exit_code: details.exitCode ?? null,
          message: details.message ?? null,
          address: details.address ?? null,
        });
        current = status;
        last = statusRowToEvent(row);
      }
      return last;
    });
  }
}

export function statusRowToEvent(row: BackendStatusRow): StatusEvent {
  return {
    id: Number(row.id),
    backendId: row.backend_id,
    status: row.status,
    time: new Date(row.time),
    lastStatus: row.last_status,
    terminationReason: row.termination_reason as StatusEvent['terminationReason'],
    terminationKind: row.termination_kind as StatusEvent['terminationKind'],
    exitError: row.exit_error,
    exitCode: row.exit_code,
    message: row.message ?? null,
    address: row.address ?? null,
  };
}
