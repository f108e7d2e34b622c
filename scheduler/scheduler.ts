import type { Logger } from '../src/logger.ts';
import type { StatusEvent } from '../src/backends/backend-status.ts';
import type { LogLine } from './container-logs.ts';
import type { DockerExecutor } from './docker-executor.ts';
import type { ContainerEvent, ContainerState, SpawnSpec } from './executor.ts';
import { startBackendPruning } from './retention.ts';
import type { ScheduledBackend, SchedulerStore } from './store.ts';

export interface SchedulerOptions {
  store: SchedulerStore;
  executor: DockerExecutor;
  logger: Logger;
  /** A backend not answering HTTP this long after it was scheduled is terminated (startuptimeout). */
  startupTimeoutMs: number;
  /** Time between SIGTERM and SIGKILL of a soft termination. */
  terminationGraceMs: number;
  /** How often to look for idle, over-lifetime and orphaned scheduled backends. */
  sweepIntervalMs: number;
  /** How long logs of terminated backends are kept. */
  logRetentionMs: number;
  /** How long terminated backends are kept at all (retention.ts). */
  backendRetentionMs: number;
  /** How often running backends' memory is sampled for max_mem_bytes. Default 5 s. */
  memorySampleIntervalMs?: number;
}

const LOG_FLUSH_MS = 200;
const LOG_FLUSH_LINES = 500;
/** A batch is stored once it holds this many characters, whatever its line count. */
const LOG_FLUSH_CHARS = 1024 * 1024;
/** How long an exit waits for the last lines of output before it is recorded. */
const LOG_DRAIN_MS = 2000;
const LOG_RETENTION_SWEEP_MS = 60_000;
/** A backend still `scheduled` this long after it was made missed its notification. */
const ORPHAN_SCHEDULED_MS = 2000;

export type SchedulerState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

/** What this process is doing for one backend. */
interface Run {
  /** Aborts waits of this run (startup) when the backend is terminated or berth stops. */
  abort: AbortController;
  containerId: string | null;
  /**
   * True while the container is being made: the engine's events for it are
   * berth's own doing (removal of a container that failed to start), and
   * spawn() records the outcome itself.
   */
  creating?: boolean;
  graceTimer?: NodeJS.Timeout;
  /** Settles when the container's output has been read to its end and stored. */
  logsDone?: Promise<void>;
}

/**
 * Drives backends through their lifecycle on one Docker engine. Every decision
 * is a status recorded in the database; every action follows a status event,
 * whichever berth process recorded it (an API replica's terminate, this
 * process's sweep). Stopping the scheduler leaves containers running: a new
 * one adopts them.
 */
export class Scheduler {
  private state: SchedulerState = 'created';
  private readonly runs = new Map<string, Run>();
  private readonly store: SchedulerStore;
  private readonly executor: DockerExecutor;
  private readonly log: Logger;
  private unsubscribe: (() => void) | undefined;
  private stopEvents: (() => void) | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private memoryTimer: NodeJS.Timeout | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  private sweeping = false;
  /** Aborted on stop: ends log following without touching the containers. */
  private readonly lifetime = new AbortController();

  constructor(private readonly options: SchedulerOptions) {
    this.store = options.store;
    this.executor = options.executor;
    this.log = options.logger.child({ component: 'scheduler' });
  }

  async start(): Promise<void> {
    if (this.state !== 'created') throw new Error(`cannot start the scheduler in state ${this.state}`);
    this.setState('starting');
    // Listen before reconciling, so that nothing recorded meanwhile is missed.
    this.unsubscribe = this.store.subscribe((event) => this.onStatus(event));
    this.stopEvents = this.executor.watchEvents(this.store.instanceId, (event) => this.onContainerEvent(event), {
      onReconnect: () => void this.reconcile().catch((error: unknown) => this.log.error({ err: error }, 'reconcile failed')),
    });
    try {
      await this.reconcile();
    } catch (error) {
      // Without an engine berth still serves its API; the sweep retries.
      this.log.error({ err: error }, 'reconcile at start failed');
    }
    this.sweepTimer = setInterval(() => void this.sweep(), this.options.sweepIntervalMs);
    this.memoryTimer = setInterval(() => void this.sampleMemory(), this.options.memorySampleIntervalMs ?? 5000);
    this.retentionTimer = setInterval(() => void this.dropExpiredLogs(), LOG_RETENTION_SWEEP_MS);
    void this.dropExpiredLogs();
    startBackendPruning({ store: this.store, retentionMs: this.options.backendRetentionMs, log: this.log, signal: this.lifetime.signal });
    this.setState('running');
  }

  /** Stops scheduling; containers keep running. Idempotent. */
  async stop(): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    this.setState('stopping');
    clearInterval(this.sweepTimer);
    clearInterval(this.memoryTimer);
    clearInterval(this.retentionTimer);
    this.lifetime.abort(new Error('scheduler stopped'));
    this.unsubscribe?.();
    this.stopEvents?.();
    for (const run of this.runs.values()) {
      clearTimeout(run.graceTimer);
      run.abort.abort(new Error('scheduler stopped'));
    }
    this.runs.clear();
    this.setState('stopped');
  }

  private setState(state: SchedulerState): void {
    this.log.debug({ from: this.state, to: state }, 'scheduler state');
    this.state = state;
  }

  private get active(): boolean {
    return this.state === 'starting' || this.state === 'running';
  }

  // ---------------------------------------------------------------------------
  // Status events

  private onStatus(event: StatusEvent): void {
    if (!this.active) return;
    const act = async () => {
      switch (event.status) {
        case 'scheduled':
          return this.spawn(event.backendId);
        case 'terminating':
          return this.terminateSoftly(event.backendId);
        case 'hard-terminating':
          return this.terminateHard(event.backendId);
        case 'terminated':
          await this.cleanUp(event.backendId);
          return this.startSuccessor(event.backendId);
        default:
          return undefined;
      }
    };
    act().catch((error: unknown) => this.log.error({ err: error, backend_id: event.backendId, status: event.status }, 'acting on status failed'));
  }

  // ---------------------------------------------------------------------------
  // Spawning

  private async spawn(backendId: string): Promise<void> {
    if (this.runs.has(backendId)) return;
    const run: Run = { abort: new AbortController(), containerId: null };
    this.runs.set(backendId, run);
    const backend = await this.store.findBackend(backendId);
    if (!backend || backend.status !== 'scheduled') {
      this.runs.delete(backendId);
      return;
    }
    // One key never has two live containers: the new backend starts once the old one has ended.
    const predecessor = await this.store.findDyingPredecessor(backend);
    if (predecessor !== undefined) {
      this.runs.delete(backendId);
      this.log.debug({ backend_id: backendId, predecessor }, 'waiting for the key\'s previous backend to end');
      return;
    }
    try {
      if (!(await this.executor.imageExists(backend.image))) {
        if (!(await this.store.record(backendId, 'loading'))) return;
        await this.executor.pullImage(backend.image);
      }
      if (!(await this.store.record(backendId, 'starting'))) return;
      run.creating = true;
      const started = await this.executor.start(spawnSpec(backend, this.store.instanceId));
      run.creating = false;
      run.containerId = started.containerId;
      this.followLogs(backendId, run, undefined);
      await this.store.setContainer(backendId, started);
      if (!(await this.store.record(backendId, 'waiting'))) {
        // Terminated while the container was being made: finish the job now.
        await this.enforceTermination(backendId);
        return;
      }
      await this.waitUntilReady(backend, run, started.hostPort);
    } catch (error) {
      // Events of the failed container stay ignored until the failure is on record: it must come first.
      if (!run.abort.signal.aborted) await this.recordFailedStart(backendId, error);
      run.creating = false;
    }
  }

  /** Ends a backend that could not be started, with the cause in one line for its owner to read. */
  private async recordFailedStart(backendId: string, error: unknown): Promise<void> {
    const message = oneLine(error instanceof Error ? error.message : String(error));
    this.log.error({ err: error, backend_id: backendId }, 'spawning failed');
    await this.store
      .appendLogs(backendId, [{ time: new Date(), stream: 'berth', line: `berth: the backend could not be started: ${message}` }])
      .catch((storeError: unknown) => this.log.warn({ err: storeError, backend_id: backendId }, 'storing the failure line failed'));
    await this.store.record(backendId, 'terminated', { terminationReason: 'internalerror', exitError: true, message });
  }

  /** A backend of the same key that waited for this one to end may start now. */
  private async startSuccessor(backendId: string): Promise<void> {
    const backend = await this.store.findBackend(backendId);
    if (!backend) return;
    const successor = await this.store.findWaitingSuccessor(backend);
    if (successor !== undefined) await this.spawn(successor);
  }

  private async waitUntilReady(backend: ScheduledBackend, run: Run, hostPort: number): Promise<void> {
    const remainingMs = backend.createdAt.getTime() + this.options.startupTimeoutMs - Date.now();
    const timeout = AbortSignal.timeout(Math.max(0, remainingMs));
    try {
      await this.executor.waitForHttp(hostPort, { signal: AbortSignal.any([timeout, run.abort.signal]) });
    } catch (error) {
      if (run.abort.signal.aborted) return;
      if (!timeout.aborted) throw error;
      this.log.warn({ backend_id: backend.id, timeout_ms: this.options.startupTimeoutMs }, 'backend did not answer HTTP in time');
      await this.store.record(backend.id, 'hard-terminating', { terminationReason: 'startuptimeout', terminationKind: 'hard' });
      return;
    }
    await this.store.record(backend.id, 'ready');
  }

  // ---------------------------------------------------------------------------
  // Terminating

  private async terminateSoftly(backendId: string): Promise<void> {
    const run = this.runFor(backendId);
    run.abort.abort(new Error('terminating'));
    const containerId = await this.containerOf(backendId, run);
    if (!containerId) return this.finishWithoutContainer(backendId);
    await this.executor.kill(containerId, 'SIGTERM');
    clearTimeout(run.graceTimer);
    run.graceTimer = setTimeout(() => {
      void this.escalate(backendId).catch((error: unknown) => this.log.error({ err: error, backend_id: backendId }, 'escalating termination failed'));
    }, this.options.terminationGraceMs);
  }

  /** The grace period is over and the app is still running: record the hard step; its event kills. */
  private async escalate(backendId: string): Promise<void> {
    const termination = await this.store.latestTermination(backendId);
    await this.store.record(backendId, 'hard-terminating', { terminationReason: termination?.reason ?? null, terminationKind: 'hard' });
  }

  private async terminateHard(backendId: string): Promise<void> {
    const run = this.runFor(backendId);
    run.abort.abort(new Error('terminating'));
    clearTimeout(run.graceTimer);
    const containerId = await this.containerOf(backendId, run);
    if (!containerId) return this.finishWithoutContainer(backendId);
    await this.executor.kill(containerId, 'SIGKILL');
  }

  /** Acts on whatever termination step the backend is at (after a restart or a race). */
  private async enforceTermination(backendId: string): Promise<void> {
    const backend = await this.store.findBackend(backendId);
    if (backend?.status === 'terminating') await this.terminateSoftly(backendId);
    else if (backend?.status === 'hard-terminating') await this.terminateHard(backendId);
    else if (backend?.status === 'terminated') await this.cleanUp(backendId);
  }

  /** Terminated before any container existed: nothing ran, so nothing failed. */
  private async finishWithoutContainer(backendId: string): Promise<void> {
    const termination = await this.store.latestTermination(backendId);
    await this.store.record(backendId, 'terminated', {
      terminationReason: termination?.reason ?? null,
      terminationKind: termination?.kind ?? null,
      exitError: false,
    });
  }

  private async cleanUp(backendId: string): Promise<void> {
    const run = this.runs.get(backendId);
    if (run) {
      clearTimeout(run.graceTimer);
      run.abort.abort(new Error('terminated'));
      this.runs.delete(backendId);
    }
    const containerId = run?.containerId ?? (await this.store.findBackend(backendId))?.containerId;
    if (containerId) await this.executor.remove(containerId);
  }

  private runFor(backendId: string): Run {
    let run = this.runs.get(backendId);
    if (!run) {
      run = { abort: new AbortController(), containerId: null };
      this.runs.set(backendId, run);
    }
    return run;
  }

  private async containerOf(backendId: string, run: Run): Promise<string | null> {
    run.containerId ??= (await this.store.findBackend(backendId))?.containerId ?? null;
    return run.containerId;
  }

  // ---------------------------------------------------------------------------
  // What the engine reports

  private onContainerEvent(event: ContainerEvent): void {
    if (!this.active) return;
    // spawn() removes a container that failed to start and records why; the removal is not a loss.
    if (this.runs.get(event.backendId)?.creating) return;
    const act = event.type === 'exited' ? this.onExited(event.backendId, event) : this.onRemoved(event.backendId);
    act.catch((error: unknown) => this.log.error({ err: error, backend_id: event.backendId, event: event.type }, 'acting on container event failed'));
  }

  private async onExited(
    backendId: string,
    exit: { exitCode: number | null; oomKilled: boolean; containerId: string; removing?: boolean },
  ): Promise<void> {
    await this.drainLogs(backendId, exit.containerId);
    const termination = await this.store.latestTermination(backendId);
    // Force-removed behind berth's back: the app did not exit, it was lost.
    const lost = exit.removing === true && !termination;
    const recorded = await this.store.record(backendId, 'terminated', {
      terminationReason: lost ? 'lost' : (termination?.reason ?? null),
      terminationKind: termination?.kind ?? null,
      exitError: exit.oomKilled || exit.exitCode !== 0,
      exitCode: exit.exitCode,
    });
    if (recorded) this.log.info({ backend_id: backendId, exit_code: exit.exitCode, oom_killed: exit.oomKilled }, 'backend exited');
    // The exit code is recorded: the container has nothing more to tell.
    await this.executor.remove(exit.containerId);
  }

  /** Removed behind berth's back while still live: the backend is lost. */
  private async onRemoved(backendId: string): Promise<void> {
    const recorded = await this.store.record(backendId, 'terminated', { terminationReason: 'lost' });
    if (recorded) this.log.warn({ backend_id: backendId }, 'container removed outside berth: backend lost');
  }

  // ---------------------------------------------------------------------------
  // Recovery and sweeping

  /**
   * Brings the database and the engine into agreement: adopts running
   * containers of live backends, records exits that happened while nobody
   * watched, marks backends whose container vanished as lost, and removes
   * containers no live backend owns.
   */
  async reconcile(): Promise<void> {
    const containers = new Map<string, ContainerState>();
    for (const container of await this.executor.listManaged(this.store.instanceId)) containers.set(container.backendId, container);
    const live = await this.store.listLiveBackends();
    const liveIds = new Set(live.map((backend) => backend.id));
    for (const backend of live) {
      const container = containers.get(backend.id);
      if (this.runs.has(backend.id)) continue;
      if (!container) {
        if (backend.status === 'scheduled') void this.spawn(backend.id);
        else await this.store.record(backend.id, 'terminated', { terminationReason: 'lost' });
      } else if (!container.running) {
        await this.onExited(backend.id, container);
      } else {
        await this.adopt(backend, container);
      }
    }
    for (const container of containers.values()) {
      if (!liveIds.has(container.backendId)) await this.executor.remove(container.containerId);
    }
  }

  private async adopt(backend: ScheduledBackend, container: ContainerState): Promise<void> {
    const run = this.runFor(backend.id);
    run.containerId = container.containerId;
    this.followLogs(backend.id, run, await this.store.latestLogTime(backend.id));
    this.log.info({ backend_id: backend.id, status: backend.status }, 'adopted running backend');
    switch (backend.status) {
      case 'scheduled':
      case 'loading':
      case 'starting':
      case 'waiting':
        if (container.hostPort === null) return;
        await this.store.setContainer(backend.id, { containerId: container.containerId, hostPort: container.hostPort });
        await this.store.record(backend.id, 'waiting');
        void this.waitUntilReady(backend, run, container.hostPort).catch((error: unknown) =>
          this.log.error({ err: error, backend_id: backend.id }, 'waiting for an adopted backend failed'),
        );
        return;
      case 'terminating':
      case 'hard-terminating':
        await this.enforceTermination(backend.id);
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------------------
  // Output and memory

  /** Reads the container's output into the store, in small batches, until the container stops. */
  private followLogs(backendId: string, run: Run, since: Date | undefined): void {
    const containerId = run.containerId;
    if (!containerId) return;
    const buffer: LogLine[] = [];
    let timer: NodeJS.Timeout | undefined;
    let writing = Promise.resolve();
    let chars = 0;
    const flush = () => {
      clearTimeout(timer);
      timer = undefined;
      chars = 0;
      const lines = buffer.splice(0);
      writing = writing
        .then(() => this.store.appendLogs(backendId, lines))
        .catch((error: unknown) => this.log.error({ err: error, backend_id: backendId }, 'storing log lines failed'));
      return writing;
    };
    run.logsDone = this.executor
      .followLogs(containerId, {
        since,
        signal: this.lifetime.signal,
        onLine: (line) => {
          buffer.push(line);
          chars += line.line.length;
          // Reading waits while a full batch is stored: a burst stays in the engine, not in berth's memory.
          if (buffer.length >= LOG_FLUSH_LINES || chars >= LOG_FLUSH_CHARS) return flush();
          timer ??= setTimeout(() => void flush(), LOG_FLUSH_MS);
          return undefined;
        },
      })
      .catch((error: unknown) => this.log.warn({ err: error, backend_id: backendId }, 'following logs failed'))
      .then(flush);
  }

  /** Makes sure the last lines a container wrote are stored before its exit is. */
  private async drainLogs(backendId: string, containerId: string): Promise<void> {
    const run = this.runs.get(backendId);
    if (!run?.logsDone) {
      // Exited while no berth watched: read what it wrote since the last stored line.
      const orphan = this.runFor(backendId);
      orphan.containerId = containerId;
      this.followLogs(backendId, orphan, await this.store.latestLogTime(backendId));
      return this.drainLogs(backendId, containerId);
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([run.logsDone, new Promise<void>((resolve) => (timer = setTimeout(resolve, LOG_DRAIN_MS)))]);
    clearTimeout(timer);
  }

  private async sampleMemory(): Promise<void> {
    for (const [backendId, run] of this.runs) {
      if (!run.containerId || !this.active) continue;
      try {
        const sample = await this.executor.sampleStats(run.containerId);
        if (sample) await this.store.recordMemoryPeak(backendId, sample.memPeak);
      } catch (error) {
        this.log.debug({ err: error, backend_id: backendId }, 'memory sample failed');
      }
    }
  }

  private async dropExpiredLogs(): Promise<void> {
    try {
      const dropped = await this.store.deleteExpiredLogs(new Date(Date.now() - this.options.logRetentionMs));
      if (dropped > 0) this.log.info({ lines: dropped }, 'dropped expired log lines');
    } catch (error) {
      this.log.error({ err: error }, 'dropping expired logs failed');
    }
  }

  private async sweep(): Promise<void> {
    if (this.sweeping || !this.active) return;
    this.sweeping = true;
    try {
      for (const { id, reason } of await this.store.listSweepable(new Date())) {
        this.log.info({ backend_id: id, reason }, 'sweeping backend');
        await this.store.record(id, 'terminating', { terminationReason: 'swept', terminationKind: 'soft' });
      }
      // A scheduled backend nobody picked up (its notification came while no scheduler listened).
      for (const id of await this.store.listScheduledBefore(new Date(Date.now() - ORPHAN_SCHEDULED_MS))) {
        if (!this.runs.has(id)) void this.spawn(id);
      }
    } catch (error) {
      this.log.error({ err: error }, 'sweep failed');
    } finally {
      this.sweeping = false;
    }
  }
}

/** The container a backend runs in: berth's variables win over the caller's. */
export function spawnSpec(backend: ScheduledBackend, instanceId: string): SpawnSpec {
  return {
    backendId: backend.id,
    instanceId,
    accountName: backend.accountName,
    serviceName: backend.serviceName,
    key: backend.key,
    image: backend.image,
    env: {
      ...backend.env,
      PORT: '8080',
      SESSION_BACKEND_ID: backend.id,
      SESSION_BACKEND_KEY: backend.key ?? '',
      SESSION_BACKEND_FENCING_TOKEN: backend.fencingToken === null ? '' : String(backend.fencingToken),
    },
    ...(backend.mount ? { mount: backend.mount } : {}),
    limits: backend.limits,
    security: backend.security,
  };
}

/** An error message as one line (engine messages may carry newlines). */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim().slice(0, 1000);
}
