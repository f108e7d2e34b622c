import type { Logger } from '../src/core/logger.ts';
import { statusRank, type BackendStatus, type StatusEvent } from '../src/core/backend-status.ts';
import { formatAddress, type HostAddress } from '../src/core/address.ts';
import {
  EngineError,
  isEngineUnreachable,
  type ContainerEngine,
  type ContainerEvent,
  type ContainerScope,
  type ContainerState,
  type ResourceLimits,
  type SpawnSpec,
} from './engine.ts';
import { NodeHeartbeat } from './node-heartbeat.ts';
import { pumpLogs } from './log-pump.ts';
import { WarmPool, type TakenContainer } from './warm-pool.ts';
import { planReconcile, type ReconcileAction } from './reconcile-plan.ts';
import { startBackendPruning } from './retention.ts';
import { startSamplers } from './samplers.ts';
import type { ScheduledBackend, SchedulerStore } from './store.ts';

/** The node this scheduler is: its name and the address its containers publish on. */
export interface NodeIdentity {
  name: string;
  address: string;
}

export interface SchedulerOptions {
  store: SchedulerStore;
  node: NodeIdentity;
  /** A node whose heartbeat is older than this is lost (BERTH_NODE_LEASE_SECONDS). */
  nodeLeaseMs: number;
  /** How often the database is compared with the engine (BERTH_RECONCILE_INTERVAL_SECONDS). */
  reconcileIntervalMs: number;
  /** Warm pools: where SDK sockets live, the default limits pool containers run with, how long one may take to warm. */
  warm?: { socketDir: string; defaultLimits: ResourceLimits; warmTimeoutMs: number };
  /** The engine of this node (docker/docker-engine.ts, or any other ContainerEngine). */
  engine: ContainerEngine;
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

/** How long an exit waits for the last lines of output before it is recorded. */
const LOG_DRAIN_MS = 2000;
const LOG_RETENTION_SWEEP_MS = 60_000;
/** How often warm pools are topped up. */
const WARM_POOL_INTERVAL_MS = 1000;
/** How often backends whose metrics are streamed are sampled: the stream's pace. */
/** Statuses from which a spawn may (re)start: nothing runs yet, or berth died while making it. */
const SPAWNABLE: readonly BackendStatus[] = ['scheduled', 'loading', 'starting'];

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
  /** True while spawn() runs for it: reconciling leaves it alone. */
  spawning?: boolean;
  /** True while an adopted backend is waited for until it answers HTTP. */
  waiting?: boolean;
  /** A signal was sent for its termination: reconciling need not send it again. */
  terminationActed?: boolean;
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
  private readonly engine: ContainerEngine;
  private readonly log: Logger;
  private unsubscribe: (() => void) | undefined;
  private stopEvents: (() => void) | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | undefined;
  private sweeping = false;
  private heartbeat: NodeHeartbeat | undefined;
  private warmPool: WarmPool | undefined;
  private warmTimer: NodeJS.Timeout | undefined;
  /** Whose containers this scheduler acts on: this installation's, on this node. */
  private readonly scope: ContainerScope;
  /** Aborted on stop: ends log following without touching the containers. */
  private readonly lifetime = new AbortController();

  constructor(private readonly options: SchedulerOptions) {
    this.store = options.store;
    this.engine = options.engine;
    this.log = options.logger.child({ component: 'scheduler', node: options.node.name });
    this.scope = { instanceId: options.store.instanceId, nodeName: options.node.name };
  }

  async start(): Promise<void> {
    if (this.state !== 'created') throw new Error(`cannot start the scheduler in state ${this.state}`);
    this.setState('starting');
    // Listen before reconciling, so that nothing recorded meanwhile is missed.
    this.unsubscribe = this.store.subscribe((event) => this.onStatus(event));
    this.stopEvents = this.engine.watchEvents(this.scope, (event) => this.onContainerEvent(event), {
      onReconnect: () => void this.reconcileLogged('after the engine came back'),
    });
    // Before the node offers itself: a node that comes back first removes the containers of
    // backends that ended while it was away (fencing), and adopts the ones still live.
    await this.reconcileLogged('at start');
    this.heartbeat = new NodeHeartbeat({
      node: this.options.node,
      leaseMs: this.options.nodeLeaseMs,
      store: this.store,
      engine: this.engine,
      logger: this.log,
      warmCounts: () => this.warmPool?.counts() ?? {},
    });
    await this.heartbeat.start();
    if (this.options.warm) {
      this.warmPool = new WarmPool({
        engine: this.engine,
        store: this.store,
        scope: this.scope,
        address: this.options.node.address,
        logger: this.log,
        ...this.options.warm,
      });
      await this.warmPool.removeStrangers().catch((error: unknown) => this.log.warn({ err: error }, 'removing old warm containers failed'));
      this.warmTimer = setInterval(() => void this.convergeWarmPool(), WARM_POOL_INTERVAL_MS);
    }
    this.reconcileTimer = setInterval(() => void this.reconcileLogged('periodic'), this.options.reconcileIntervalMs);
    this.sweepTimer = setInterval(() => void this.sweep(), this.options.sweepIntervalMs);
    startSamplers({
      engine: this.engine,
      store: this.store,
      running: () => [...this.runs].flatMap(([backendId, run]) => (run.containerId ? [[backendId, run.containerId] as [string, string]] : [])),
      log: this.log,
      memoryIntervalMs: this.options.memorySampleIntervalMs ?? 5000,
      signal: this.lifetime.signal,
    });
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
    clearInterval(this.retentionTimer);
    clearInterval(this.reconcileTimer);
    clearInterval(this.warmTimer);
    this.heartbeat?.stop();
    // Their sockets live in this process: without it, the pool containers are of no use.
    await this.warmPool?.stop().catch((error: unknown) => this.log.warn({ err: error }, 'removing warm containers failed'));
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
      // Every node hears every status; each acts only on its own backends.
      if (event.status !== 'scheduled' && !this.runs.has(event.backendId) && !(await this.owns(event.backendId))) return undefined;
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

  /** True when the backend is this node's (or, written before nodes existed, nobody's). */
  private async owns(backendId: string): Promise<boolean> {
    const backend = await this.store.findBackend(backendId);
    return backend !== undefined && this.isMine(backend);
  }

  private isMine(backend: ScheduledBackend): boolean {
    return backend.nodeName === null || backend.nodeName === this.options.node.name;
  }

  /**
   * Makes the backend's container and waits until it answers HTTP. Starts from
   * where the backend stands, so that a spawn cut short (berth killed) resumes:
   * `leftover` is a container of that earlier attempt, removed first.
   */
  private async spawn(backendId: string, leftover: string | null = null): Promise<void> {
    if (this.runs.has(backendId)) return;
    const run: Run = { abort: new AbortController(), containerId: null, spawning: true };
    this.runs.set(backendId, run);
    try {
      await this.spawnRun(backendId, run, leftover);
    } finally {
      run.spawning = false;
      // Nothing was made: forget the run, so that reconciling can try again.
      if (run.containerId === null && this.runs.get(backendId) === run && !run.terminationActed) this.runs.delete(backendId);
    }
  }

  private async spawnRun(backendId: string, run: Run, leftover: string | null): Promise<void> {
    let backend: ScheduledBackend | undefined;
    try {
      const found = await this.store.findBackendToSpawn(backendId);
      if (!found || !this.isMine(found.backend) || !SPAWNABLE.includes(found.backend.status)) return;
      backend = found.backend;
      // One key never has two live containers: the new backend starts once the old one has ended.
      const { predecessor } = found;
      if (predecessor !== null) {
        this.log.debug({ backend_id: backendId, predecessor }, "waiting for the key's previous backend to end");
        return;
      }
    } catch (error) {
      this.log.warn({ err: error, backend_id: backendId }, 'could not read the backend to spawn; reconciling retries');
      return;
    }
    const at = statusRank(backend.status);
    const advance = async (status: BackendStatus, details = {}) => at >= statusRank(status) || (await this.store.record(backendId, status, details)) !== undefined;
    try {
      const taken = backend.status === 'scheduled' && leftover === null ? this.warmPool?.take(backend) : undefined;
      if (taken) {
        await this.startWarm(backend, run, taken);
        return;
      }
      if (leftover !== null) {
        run.creating = true;
        await this.engine.remove(leftover);
      }
      if (!(await this.engine.imageExists(backend.image))) {
        if (!(await advance('loading'))) return;
        await this.engine.pullImage(backend.image);
      }
      if (!(await advance('starting'))) return;
      run.creating = true;
      const started = await this.engine.start(spawnSpec(backend, this.scope, this.options.node.address));
      run.creating = false;
      run.containerId = started.containerId;
      this.followLogs(backendId, run, undefined);
      const address = { host: this.options.node.address, port: started.hostPort };
      if (!(await this.store.recordWaiting(backendId, started, formatAddress(address)))) {
        // Terminated while the container was being made: finish the job now.
        await this.enforceTermination(backendId);
        return;
      }
      await this.waitUntilReady(backend, run, address);
    } catch (error) {
      if (run.abort.signal.aborted) {
        run.creating = false;
        return;
      }
      // The engine refused or is away: the backend cannot start, and says why. Anything else (the
      // database away) leaves it where it stands, for reconciling to pick up.
      if (isEngineFailure(error)) await this.recordFailedStart(backendId, error).catch((recordError: unknown) => this.log.error({ err: recordError, backend_id: backendId }, 'recording a failed start failed'));
      else this.log.warn({ err: error, backend_id: backendId }, 'spawning was interrupted; reconciling resumes it');
      run.creating = false;
    }
  }

  /**
   * Gives a warm container to the backend: its id, key, fencing token and env
   * go through the SDK socket, and it is ready once the app says Ready and
   * answers HTTP.
   */
  private async startWarm(backend: ScheduledBackend, run: Run, taken: TakenContainer): Promise<void> {
    run.containerId = taken.containerId;
    // Ends the probe as soon as this start is decided either way, rather than at the startup timeout.
    const probing = new AbortController();
    try {
      const address = { host: this.options.node.address, port: taken.hostPort };
      const startup = this.startupSignal(backend, run);
      const env = spawnSpec(backend, this.scope, address.host).env;
      // The app's own setup, berth's HTTP probe (sent once the assignment is) and the record of
      // `starting` and `waiting` wait for none of each other: a warm start is the longest of the three.
      const readied = taken.assign({ backend_id: backend.id, key: backend.key ?? backend.id, fencing_token: backend.fencingToken, static_token: null, env }, startup.signal);
      const answering = this.engine.waitForHttp(address, { signal: AbortSignal.any([startup.signal, probing.signal]) });
      readied.catch(() => undefined);
      answering.catch(() => undefined);
      const recorded = await this.store.recordWaiting(backend.id, { containerId: taken.containerId, hostPort: taken.hostPort }, formatAddress(address), {
        starting: true,
      });
      this.followLogs(backend.id, run, undefined);
      if (!recorded) {
        // Terminated meanwhile: finish the job now (the container is recorded as the backend's).
        await this.enforceTermination(backend.id);
        return;
      }
      try {
        await readied;
      } catch (error) {
        if (run.abort.signal.aborted) return;
        throw new EngineError(`the warm container did not become ready: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
      await this.waitUntilReady(backend, run, address, startup, answering);
    } finally {
      probing.abort();
      await taken.release().catch(() => undefined);
    }
  }

  private async convergeWarmPool(): Promise<void> {
    if (!this.active) return;
    await this.warmPool?.converge().catch((error: unknown) => this.log.warn({ err: error }, 'keeping warm pools failed'));
  }

  /** The backend whose container this is (warm-pool containers carry no backend label). */
  private ownerOf(containerId: string): string | undefined {
    for (const [backendId, run] of this.runs) if (run.containerId === containerId) return backendId;
    return undefined;
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

  /** Aborts when the backend's startup time is up (`timeout`) or its run is aborted. */
  private startupSignal(backend: ScheduledBackend, run: Run): { signal: AbortSignal; timeout: AbortSignal } {
    const remainingMs = backend.createdAt.getTime() + this.options.startupTimeoutMs - Date.now();
    const timeout = AbortSignal.timeout(Math.max(0, remainingMs));
    return { signal: AbortSignal.any([timeout, run.abort.signal]), timeout };
  }

  /** Records `ready` once the backend answers HTTP (`answering`: a probe already under way), or ends it if it does not in time. */
  private async waitUntilReady(
    backend: ScheduledBackend,
    run: Run,
    address: HostAddress,
    startup = this.startupSignal(backend, run),
    answering = this.engine.waitForHttp(address, { signal: startup.signal }),
  ): Promise<void> {
    const { timeout } = startup;
    try {
      await answering;
    } catch (error) {
      if (run.abort.signal.aborted) return;
      if (!timeout.aborted) throw error;
      this.log.warn({ backend_id: backend.id, timeout_ms: this.options.startupTimeoutMs }, 'backend did not answer HTTP in time');
      await this.store.record(backend.id, 'hard-terminating', { terminationReason: 'startuptimeout', terminationKind: 'hard' });
      return;
    }
    await this.store.record(backend.id, 'ready', { address: formatAddress(address) });
  }

  // ---------------------------------------------------------------------------
  // Terminating

  private async terminateSoftly(backendId: string): Promise<void> {
    const run = this.runFor(backendId);
    run.abort.abort(new Error('terminating'));
    const containerId = await this.containerOf(backendId, run);
    if (!containerId) return this.finishWithoutContainer(backendId);
    await this.engine.kill(containerId, 'SIGTERM');
    run.terminationActed = true;
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
    await this.engine.kill(containerId, 'SIGKILL');
    run.terminationActed = true;
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
    if (containerId) await this.engine.remove(containerId);
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

  private onContainerEvent(raw: ContainerEvent): void {
    if (!this.active) return;
    const owner = raw.backendId || this.ownerOf(raw.containerId);
    if (!owner) {
      // A warm container that no backend took: the pool replaces it.
      this.warmPool?.forget(raw.containerId);
      return;
    }
    const event = { ...raw, backendId: owner };
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
    await this.engine.remove(exit.containerId);
  }

  /** Removed behind berth's back while still live: the backend is lost. */
  private async onRemoved(backendId: string): Promise<void> {
    const recorded = await this.store.record(backendId, 'terminated', { terminationReason: 'lost' });
    if (recorded) this.log.warn({ backend_id: backendId }, 'container removed outside berth: backend lost');
  }

  // ---------------------------------------------------------------------------
  // Recovery and sweeping

  /**
   * Brings the database and the engine into agreement (reconcile-plan.ts says
   * what to do). One at a time; a call while one runs joins it.
   */
  reconcile(): Promise<void> {
    this.reconciling ??= this.reconcileOnce().finally(() => (this.reconciling = undefined));
    return this.reconciling;
  }

  private async reconcileLogged(when: string): Promise<void> {
    if (!this.active) return;
    try {
      await this.reconcile();
    } catch (error) {
      // The engine or the database is away: the next round tries again.
      this.log.warn({ err: error, when }, 'reconcile failed');
    }
  }

  private async reconcileOnce(): Promise<void> {
    // The database first, then the engine: see planReconcile.
    const live = await this.store.listLiveBackends();
    const listed = await this.engine.listManaged(this.scope);
    // Warm containers belong to the backend that took them, or to the pool; others are strays.
    const taken = new Map(live.flatMap((backend) => (backend.containerId ? [[backend.containerId, backend.id] as const] : [])));
    const containers: ContainerState[] = [];
    for (const container of listed) {
      if (container.poolId === null) containers.push(container);
      else if (taken.has(container.containerId)) containers.push({ ...container, backendId: taken.get(container.containerId)! });
      else if (!this.ownerOf(container.containerId) && !this.warmPool?.has(container.poolId)) await this.engine.remove(container.containerId).catch(() => undefined);
    }
    const runs = new Map(
      [...this.runs].map(([id, run]) => [
        id,
        { creating: run.creating === true, busy: run.spawning === true || run.waiting === true, terminationActed: run.terminationActed === true },
      ]),
    );
    for (const action of planReconcile(live, containers, runs)) {
      if (!this.active) return;
      await this.apply(action).catch((error: unknown) =>
        this.log.warn({ err: error, backend_id: action.backendId, action: action.kind }, 'reconcile action failed'),
      );
    }
  }

  private async apply(action: ReconcileAction): Promise<void> {
    const { backendId } = action;
    if (action.kind !== 'remove-orphan') this.log.info({ backend_id: backendId, action: action.kind }, 'reconciling');
    switch (action.kind) {
      case 'spawn':
        void this.spawn(backendId);
        return;
      case 'resume':
        void this.spawn(backendId, action.removeContainerId);
        return;
      case 'adopt': {
        // The whole row only for the backend adopted (rare: after a restart or a lost event).
        const backend = await this.store.findBackend(backendId);
        return backend ? this.adopt(backend, action.container) : undefined;
      }
      case 'record-exit':
        void this.onExited(backendId, action.container).catch((error: unknown) => this.log.warn({ err: error, backend_id: backendId }, 'recording an exit failed'));
        return;
      case 'lost':
        if (await this.store.record(backendId, 'terminated', { terminationReason: 'lost' })) {
          this.log.warn({ backend_id: backendId }, 'container vanished: backend lost');
        }
        return;
      case 'enforce-termination':
        return this.enforceTermination(backendId);
      case 'finish-termination':
        return this.finishWithoutContainer(backendId);
      case 'remove-orphan': {
        // Made after the database was read? Then it is live now and not an orphan.
        const backend = await this.store.findBackend(backendId);
        if (backend && backend.status !== 'terminated' && this.isMine(backend)) return;
        this.log.info({ backend_id: backendId, container_id: action.containerId }, 'removing a container no live backend owns');
        await this.engine.remove(action.containerId);
        return;
      }
    }
  }

  private async adopt(backend: ScheduledBackend, container: ContainerState): Promise<void> {
    const run = this.runFor(backend.id);
    run.containerId = container.containerId;
    if (!run.logsDone) this.followLogs(backend.id, run, await this.store.latestLogTime(backend.id));
    this.log.info({ backend_id: backend.id, status: backend.status }, 'adopted running backend');
    switch (backend.status) {
      case 'scheduled':
      case 'loading':
      case 'starting':
      case 'waiting': {
        if (container.hostPort === null) return;
        const address = { host: this.options.node.address, port: container.hostPort };
        await this.store.recordWaiting(backend.id, { containerId: container.containerId, hostPort: container.hostPort }, formatAddress(address));
        run.waiting = true;
        void this.waitUntilReady(backend, run, address)
          .catch((error: unknown) => this.log.error({ err: error, backend_id: backend.id }, 'waiting for an adopted backend failed'))
          .finally(() => (run.waiting = false));
        return;
      }
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

  /** Reads the container's output into the store until it stops (log-pump.ts). */
  private followLogs(backendId: string, run: Run, since: Date | undefined): void {
    if (!run.containerId) return;
    run.logsDone = pumpLogs({ engine: this.engine, store: this.store, log: this.log, signal: this.lifetime.signal }, backendId, run.containerId, since);
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
    } catch (error) {
      this.log.error({ err: error }, 'sweep failed');
    } finally {
      this.sweeping = false;
    }
  }
}

/** The container a backend runs in: berth's variables win over the caller's. */
export function spawnSpec(backend: ScheduledBackend, scope: ContainerScope, hostIp: string): SpawnSpec {
  return {
    backendId: backend.id,
    ...scope,
    hostIp,
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

/** An error of the engine (it refused, or is away), as opposed to one of the database. */
function isEngineFailure(error: unknown): boolean {
  return error instanceof EngineError || isEngineUnreachable(error) || (error as { statusCode?: unknown }).statusCode !== undefined;
}
