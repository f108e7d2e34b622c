/** The lifecycle, in order: a backend only ever moves forward through it. */
export const BACKEND_STATUSES = [
  'scheduled',
  'loading',
  'starting',
  'waiting',
  'ready',
  'terminating',
  'hard-terminating',
  'terminated',
] as const;
export type BackendStatus = (typeof BACKEND_STATUSES)[number];

export const TERMINATION_REASONS = ['swept', 'external', 'startuptimeout', 'keyexpired', 'lost', 'internalerror'] as const;
export type TerminationReason = (typeof TERMINATION_REASONS)[number];

export const TERMINATION_KINDS = ['soft', 'hard'] as const;
export type TerminationKind = (typeof TERMINATION_KINDS)[number];

export function statusRank(status: BackendStatus): number {
  return BACKEND_STATUSES.indexOf(status);
}

/** True when `next` lies ahead of `current`; the only moves berth records. */
export function isForward(current: BackendStatus, next: BackendStatus): boolean {
  return statusRank(next) > statusRank(current);
}

/** Facts a status may carry besides its name. */
export interface StatusDetails {
  terminationReason?: TerminationReason | null;
  terminationKind?: TerminationKind | null;
  exitError?: boolean | null;
  exitCode?: number | null;
  /** Why, in one line, when berth itself ended the backend (a failed start). */
  message?: string | null;
  /** `host:port` where the backend's port 8080 is reached, on the steps that publish it. */
  address?: string | null;
}

/** One recorded step of a backend's lifecycle, as stored and as streamed. */
export interface StatusEvent {
  /** Rising id of the status row; the SSE event id. */
  id: number;
  backendId: string;
  status: BackendStatus;
  time: Date;
  lastStatus: BackendStatus | null;
  terminationReason: TerminationReason | null;
  terminationKind: TerminationKind | null;
  exitError: boolean | null;
  exitCode: number | null;
  message: string | null;
  /** `host:port` of the backend's port 8080, on `waiting` and `ready`: what a proxy dials. */
  address: string | null;
}

/** The public shape (status endpoint and stream): no exit code, absent fields left out. */
export function statusEventToPublicJson(event: StatusEvent): Record<string, unknown> {
  return {
    status: event.status,
    time: event.time.toISOString(),
    ...(event.terminationReason ? { termination_reason: event.terminationReason } : {}),
    ...(event.terminationKind ? { termination_kind: event.terminationKind } : {}),
    ...(event.exitError !== null ? { exit_error: event.exitError } : {}),
  };
}

/** The authenticated shape (backend metadata): everything, exit code included. */
export function statusEventToJson(event: StatusEvent): Record<string, unknown> {
  return {
    ...statusEventToPublicJson(event),
    ...(event.lastStatus ? { last_status: event.lastStatus } : {}),
    ...(event.status === 'terminated' ? { exit_code: event.exitCode } : {}),
    ...(event.message ? { message: event.message } : {}),
  };
}
