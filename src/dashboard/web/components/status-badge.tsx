import type { BackendStatusName } from '../../../client/index.ts';

/** One colour per stretch of the lifecycle: starting up, serving, going away, gone. */
function tone(status: BackendStatusName): string {
  if (status === 'ready') return 'ok';
  if (status === 'terminated') return 'gone';
  if (status === 'terminating' || status === 'hard-terminating') return 'stopping';
  return 'starting';
}

export function StatusBadge({ status }: { status: BackendStatusName }) {
  return (
    <span class={`badge ${tone(status)}`} data-status={status}>
      {status}
    </span>
  );
}
