/**
 * Level-triggered reconciliation, as a pure function: what should run (the
 * database's live backends of this node) against what runs (the engine's
 * containers of this node) and what this process is doing (its runs) gives
 * the actions that converge them. Notifications are the fast path; this is
 * what makes a lost one harmless. The scheduler applies the actions.
 */
import type { BackendStatus } from '../src/core/backend-status.ts';
import type { ContainerState } from './engine.ts';

/** What this process is doing for a backend, as far as reconciling cares. */
export interface RunView {
  /** The container is being made (or a failed one removed): spawn() owns the outcome. */
  creating: boolean;
  /** A spawn, or a wait for readiness, is in flight: it will record what comes next. */
  busy: boolean;
  /** This process already acted on the backend's termination (signal sent). */
  terminationActed: boolean;
}

export interface BackendView {
  id: string;
  status: BackendStatus;
}

export type ReconcileAction =
  /** Scheduled and nobody picked it up. */
  | { kind: 'spawn'; backendId: string }
  /** Its start was cut short (berth died mid-spawn): remove what was left, if anything, and start again from where it stood. */
  | { kind: 'resume'; backendId: string; removeContainerId: string | null }
  /** Its container runs but this process does not follow it. */
  | { kind: 'adopt'; backendId: string; container: ContainerState }
  /** Its container stopped and the exit is not on record. */
  | { kind: 'record-exit'; backendId: string; container: ContainerState }
  /** Its container vanished. */
  | { kind: 'lost'; backendId: string }
  /** Being terminated, but nobody acted on it (the event was lost). */
  | { kind: 'enforce-termination'; backendId: string }
  /** Being terminated and nothing runs: only the record is missing. */
  | { kind: 'finish-termination'; backendId: string }
  /** A container no live backend of this node owns (checked again before removal). */
  | { kind: 'remove-orphan'; backendId: string; containerId: string };

const STARTING: readonly BackendStatus[] = ['loading', 'starting'];
const SERVING: readonly BackendStatus[] = ['waiting', 'ready'];
const STOPPING: readonly BackendStatus[] = ['terminating', 'hard-terminating'];

/** A container that was created but never started has no exit code. */
function neverStarted(container: ContainerState): boolean {
  return !container.running && container.exitCode === null;
}

/**
 * `live` must be read from the database before `containers` from the engine:
 * then a container missing from the list is really gone, and a container of a
 * backend made since is covered by its run (spawn registers the run first).
 */
export function planReconcile(live: readonly BackendView[], containers: readonly ContainerState[], runs: ReadonlyMap<string, RunView>): ReconcileAction[] {
  const byBackend = new Map(containers.map((container) => [container.backendId, container]));
  const liveIds = new Set(live.map((backend) => backend.id));
  const actions: ReconcileAction[] = [];
  for (const backend of live) {
    const container = byBackend.get(backend.id);
    const run = runs.get(backend.id);
    if (run?.creating) continue;
    const action = planBackend(backend, container, run);
    if (action) actions.push(action);
  }
  for (const container of containers) {
    if (liveIds.has(container.backendId) || runs.has(container.backendId)) continue;
    actions.push({ kind: 'remove-orphan', backendId: container.backendId, containerId: container.containerId });
  }
  return actions;
}

function planBackend(backend: BackendView, container: ContainerState | undefined, run: RunView | undefined): ReconcileAction | undefined {
  const backendId = backend.id;
  if (backend.status === 'scheduled') {
    if (run) return undefined;
    return container ? { kind: 'resume', backendId, removeContainerId: container.containerId } : { kind: 'spawn', backendId };
  }
  if (STARTING.includes(backend.status)) {
    // A spawn in flight is pulling or between steps; one that was cut short (the database away) is not.
    if (run?.busy) return undefined;
    if (!container) return { kind: 'resume', backendId, removeContainerId: null };
    if (container.running) return { kind: 'adopt', backendId, container };
    if (neverStarted(container)) return { kind: 'resume', backendId, removeContainerId: container.containerId };
    return { kind: 'record-exit', backendId, container };
  }
  if (SERVING.includes(backend.status)) {
    if (!container) return { kind: 'lost', backendId };
    // `waiting` with nobody waiting for readiness (a write of `ready` failed): wait again.
    if (container.running) return run?.busy || (run && backend.status === 'ready') ? undefined : { kind: 'adopt', backendId, container };
    return { kind: 'record-exit', backendId, container };
  }
  if (STOPPING.includes(backend.status)) {
    if (!container) return { kind: 'finish-termination', backendId };
    if (container.running) return run?.terminationActed ? undefined : { kind: 'enforce-termination', backendId };
    return { kind: 'record-exit', backendId, container };
  }
  return undefined;
}
