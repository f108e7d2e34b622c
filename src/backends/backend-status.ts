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
