/**
 * The container engine behind the scheduler, on Docker through dockerode: one
 * container per backend, its port 8080 published on 127.0.0.1, resource limits
 * mapped to HostConfig, and the engine's event stream turned into `exited` /
 * `removed` events. The scheduler (scheduler.ts) decides; this file only does.
 */
import type Dockerode from 'dockerode';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../src/logger.ts';
import { followContainerLogs, type FollowLogsOptions } from './container-logs.ts';
import { sampleContainerStats, streamContainerStats, type MetricsSample } from './container-stats.ts';
import { isEngineUnreachable } from './docker.ts';
import { ensureBackendNetwork } from './docker-network.ts';
import { LineSplitter } from './line-splitter.ts';
import { unsafeMountReason } from './mount-check.ts';
import { formatAddress, type HostAddress } from '../src/core/address.ts';
import {
  CONTAINER_PORT,
  type ContainerScope,
  LABELS,
  type ContainerEvent,
  type ContainerState,
  type EngineCapabilities,
  type SpawnSpec,
  type StartedContainer,
} from './executor.ts';

const PORT_KEY = `${CONTAINER_PORT}/tcp`;
const DEFAULT_CPU_PERIOD_MICROSECONDS = 100_000;
// Short: every interval spent polling is added to the cold start.
const DEFAULT_WAIT_INTERVAL_MS = 20;
const DEFAULT_ATTEMPT_TIMEOUT_MS = 1_000;
const DEFAULT_RECONNECT_DELAY_MS = 1_000;
const PING_TIMEOUT_MS = 3_000;

// ---------------------------------------------------------------------------
// Errors

export type DockerExecutorErrorCode =
  | 'image_pull_failed'
  | 'container_create_failed'
  | 'container_start_failed'
  | 'container_exited_on_start';

/**
 * The engine refused something berth asked for. "No engine answers" is not
 * wrapped: those errors keep their socket `code` so that isEngineUnreachable()
 * (docker.ts) still recognises them and connect can answer 503.
 */
export class DockerExecutorError extends Error {
  override readonly name = 'DockerExecutorError';

  constructor(
    readonly code: DockerExecutorErrorCode,
    message: string,
    readonly context: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The engine's own words. docker-modem keeps the JSON body of an error on `json`,
 * except for streaming endpoints (pull, events), where only its message has it,
 * behind a "(HTTP code 500) server error - " prefix.
 */
function engineMessage(error: unknown): string {
  const json = (error as { json?: unknown }).json;
  if (json && typeof json === 'object' && typeof (json as { message?: unknown }).message === 'string') {
    return (json as { message: string }).message;
  }
  if (typeof json === 'string' && json.trim() !== '') return json.trim();
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^\(HTTP code \d+\) .*? - /, '').trim();
}

function engineStatus(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** `<what> failed: <the engine's words>`, keeping the engine's error as the cause. */
function refusedError(
  code: DockerExecutorErrorCode,
  what: string,
  error: unknown,
  context: Record<string, unknown>,
): DockerExecutorError {
  const status = engineStatus(error);
  return new DockerExecutorError(
    code,
    `${what} failed: ${engineMessage(error)}`,
    status === undefined ? context : { ...context, engineStatus: status },
    { cause: error },
  );
}

// ---------------------------------------------------------------------------
// Pure mappings (unit-tested without Docker)

/** Container name for a backend; unique per engine, so a second start of one backend fails loudly. */
export function containerName(backendId: string): string {
  return `berth-${backendId}`;
}

/** What every container of this node gets, whatever its service asks for. */
export interface ContainerHardening {
  /** Network with inter-container communication off (docker-network.ts). Default berth-backends. */
  network: string;
  /** Most processes and threads a container may hold. Default 512. */
  pidsLimit: number;
  /** json-file log size before rotation. Default 10 MiB. */
  logMaxBytes: number;
  /** Rotated log files kept. Default 3. */
  logMaxFiles: number;
}

export const DEFAULT_HARDENING: Readonly<ContainerHardening> = Object.freeze({
  network: 'berth-backends',
  pidsLimit: 512,
  logMaxBytes: 10 * 1024 * 1024,
  logMaxFiles: 3,
});

/** A writable /tmp when the root filesystem is read-only: most runtimes need one. */
const READ_ONLY_ROOT_TMPFS = { '/tmp': 'rw,nosuid,nodev,size=64m' };

/** What start() sends to POST /containers/create for a spawn. */
export function containerCreateOptions(spec: SpawnSpec, hardening: ContainerHardening = DEFAULT_HARDENING): Dockerode.ContainerCreateOptions {
  const labels: Record<string, string> = {
    [LABELS.managed]: 'true',
    [LABELS.instance]: spec.instanceId,
    [LABELS.node]: spec.nodeName,
    [LABELS.backendId]: spec.backendId,
    [LABELS.account]: spec.accountName,
    [LABELS.service]: spec.serviceName,
  };
  if (spec.key !== null) labels[LABELS.key] = spec.key;

  const hostConfig: Dockerode.HostConfig = {
    // An empty HostPort lets the engine pick a free port; only loopback, since
    // browsers reach backends through the proxy, never directly.
    PortBindings: { [PORT_KEY]: [{ HostIp: spec.hostIp, HostPort: '' }] },
    // A dead backend stays dead: the scheduler records why and moves it to terminated.
    RestartPolicy: { Name: 'no' },
    // The scheduler reads the exit code (and OOM flag) first, then removes the container.
    AutoRemove: false,
    // Tenants share the engine: the app gets no capability its service was not given,
    // cannot gain one through setuid binaries, cannot fork-bomb the host, cannot fill
    // its disk with logs, and cannot reach other backends except through the proxy.
    NetworkMode: hardening.network,
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges'],
    PidsLimit: hardening.pidsLimit,
    LogConfig: { Type: 'json-file', Config: { 'max-size': `${Math.ceil(hardening.logMaxBytes / 1024)}k`, 'max-file': `${hardening.logMaxFiles}` } },
  };
  const { security } = spec;
  if (security?.capAdd?.length) hostConfig.CapAdd = [...security.capAdd];
  if (security?.readOnlyRoot) {
    hostConfig.ReadonlyRootfs = true;
    hostConfig.Tmpfs = { ...READ_ONLY_ROOT_TMPFS };
  }

  const { limits } = spec;
  if (limits.memoryLimitBytes !== undefined) {
    // MemorySwap equal to Memory means "no swap on top", so the limit is real.
    hostConfig.Memory = limits.memoryLimitBytes;
    hostConfig.MemorySwap = limits.memoryLimitBytes;
  }
  if (limits.cpuPeriodPercent !== undefined) {
    const period = limits.cpuPeriod ?? DEFAULT_CPU_PERIOD_MICROSECONDS;
    hostConfig.CpuPeriod = period;
    hostConfig.CpuQuota = Math.round((period * limits.cpuPeriodPercent) / 100);
  } else if (limits.cpuPeriod !== undefined) {
    // A period without a quota limits nothing, but it is what was asked for.
    hostConfig.CpuPeriod = limits.cpuPeriod;
  }
  if (limits.cpuTimeLimitSeconds !== undefined) {
    hostConfig.Ulimits = [{ Name: 'cpu', Soft: limits.cpuTimeLimitSeconds, Hard: limits.cpuTimeLimitSeconds }];
  }
  if (limits.diskLimitBytes !== undefined) {
    hostConfig.StorageOpt = { size: `${limits.diskLimitBytes}` };
  }
  if (spec.mount) {
    hostConfig.Binds = [`${spec.mount.source}:${spec.mount.target}`];
  }

  return {
    name: containerName(spec.backendId),
    Image: spec.image,
    Env: Object.entries(spec.env).map(([name, value]) => `${name}=${value}`),
    Labels: labels,
    ExposedPorts: { [PORT_KEY]: {} },
    HostConfig: hostConfig,
    ...(security?.user !== undefined ? { User: security.user } : {}),
  };
}

/** The part of GET /info that capabilities depend on. */
export interface DockerInfoLimits {
  MemoryLimit?: boolean;
  SwapLimit?: boolean;
  CpuCfsPeriod?: boolean;
  CpuCfsQuota?: boolean;
  Driver?: string;
  DriverStatus?: [string, string][] | null;
}

export function capabilitiesFromInfo(info: DockerInfoLimits): EngineCapabilities {
  return {
    memoryLimit: info.MemoryLimit === true,
    swapLimit: info.SwapLimit === true,
    cpuCfs: info.CpuCfsPeriod === true && info.CpuCfsQuota === true,
    diskLimit: storageDriverEnforcesSize(info),
  };
}

// Which drivers honour StorageOpt size. overlay2 needs xfs mounted with pquota;
// /info shows the backing filesystem but not its mount options, so xfs is the
// best we can check (without pquota, create then fails with a clear message).
function storageDriverEnforcesSize(info: DockerInfoLimits): boolean {
  switch (info.Driver) {
    case 'devicemapper':
    case 'btrfs':
    case 'zfs':
      return true;
    case 'overlay2': {
      const backing = (info.DriverStatus ?? []).find(([name]) => name === 'Backing Filesystem');
      return backing?.[1] === 'xfs';
    }
    default:
      return false;
  }
}

function publishedHostPort(info: Dockerode.ContainerInspectInfo): number | null {
  const bindings = info.NetworkSettings?.Ports?.[PORT_KEY] ?? [];
  // berth publishes one binding, on the node's address.
  const binding = bindings.find((b) => b.HostPort !== '') ?? bindings[0];
  const port = Number(binding?.HostPort);
  return Number.isInteger(port) && port > 0 ? port : null;
}

function containerStateFromInspect(info: Dockerode.ContainerInspectInfo): ContainerState {
  const running = info.State.Running;
  // A container that was created but never started has ExitCode 0 without having exited.
  const exited = !running && info.State.Status !== 'created';
  return {
    containerId: info.Id,
    backendId: info.Config.Labels?.[LABELS.backendId] ?? '',
    running,
    exitCode: exited ? info.State.ExitCode : null,
    oomKilled: info.State.OOMKilled,
    hostPort: running ? publishedHostPort(info) : null,
  };
}

function managedLabelFilter(scope: ContainerScope): string[] {
  return [`${LABELS.managed}=true`, `${LABELS.instance}=${scope.instanceId}`, `${LABELS.node}=${scope.nodeName}`];
}

// ---------------------------------------------------------------------------
// Executor

export interface WaitForHttpOptions {
  /** Aborting rejects the wait (startup timeout, backend terminated meanwhile). */
  signal: AbortSignal;
  /** Pause between attempts. Default 20 ms. */
  intervalMs?: number;
  /** Give up on one attempt after this long without a response. Default 1000 ms. */
  attemptTimeoutMs?: number;
}

export interface WatchEventsOptions {
  /** Pause before reconnecting after the event stream ended or failed. Default 1000 ms. */
  reconnectDelayMs?: number;
  /**
   * Called each time the stream is back after a break. Docker only replays the
   * events it still buffers in memory (none after an engine restart), so a
   * caller that must not miss an exit should reconcile here with listManaged().
   */
  onReconnect?: () => void;
}

export class DockerExecutor {
  private capabilitiesPromise: Promise<EngineCapabilities> | undefined;
  private readonly log: Logger | undefined;

  private networkReady: Promise<void> | undefined;
  private readonly hardening: ContainerHardening;

  constructor(
    private readonly docker: Dockerode,
    logger?: Logger,
    hardening: Partial<ContainerHardening> = {},
  ) {
    this.log = logger?.child({ component: 'docker-executor' });
    this.hardening = { ...DEFAULT_HARDENING, ...hardening };
  }

  /** Creates the backend network once per process (a failure is retried at the next start). */
  private ensureNetwork(): Promise<void> {
    this.networkReady ??= ensureBackendNetwork(this.docker, this.hardening.network).catch((err: unknown) => {
      this.networkReady = undefined;
      throw err;
    });
    return this.networkReady;
  }

  private async createContainer(options: Dockerode.ContainerCreateOptions): Promise<Dockerode.Container> {
    await this.ensureNetwork();
    try {
      return await this.docker.createContainer(options);
    } catch (err) {
      // Someone removed the network while berth ran: make it again, once.
      if (engineStatus(err) !== 404 || !/network/i.test(engineMessage(err))) throw err;
      this.networkReady = undefined;
      await this.ensureNetwork();
      return this.docker.createContainer(options);
    }
  }

  /** What this engine can enforce; asked once, then cached (a failure is not cached). */
  capabilities(): Promise<EngineCapabilities> {
    this.capabilitiesPromise ??= this.docker.info().then(
      (info: DockerInfoLimits) => capabilitiesFromInfo(info),
      (err: unknown) => {
        this.capabilitiesPromise = undefined;
        throw err;
      },
    );
    return this.capabilitiesPromise;
  }

  /** Resolves when the engine answers within a few seconds. */
  async ping(): Promise<void> {
    await (this.docker.ping as (options: { abortSignal: AbortSignal }) => Promise<unknown>)({ abortSignal: AbortSignal.timeout(PING_TIMEOUT_MS) });
  }

  async imageExists(image: string): Promise<boolean> {
    try {
      await this.docker.getImage(image).inspect();
      return true;
    } catch (err) {
      if (engineStatus(err) === 404) return false;
      throw err;
    }
  }

  async pullImage(image: string): Promise<void> {
    // An image id names no repository: only a registry holding a tag can serve it,
    // and asking Docker would send it to Docker Hub as `library/sha256`.
    if (/^sha256:[0-9a-f]+$/i.test(image)) {
      throw new DockerExecutorError(
        'image_pull_failed',
        `pulling ${image} failed: an image id cannot be pulled, only a repository reference`,
        { image },
      );
    }
    const started = Date.now();
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.pull(image);
    } catch (err) {
      // The engine answers 500 before streaming when the registry cannot be reached.
      if (isEngineUnreachable(err)) throw err;
      throw refusedError('image_pull_failed', `pulling ${image}`, err, { image });
    }
    const progress = await new Promise<PullProgress[]>((resolve, reject) => {
      this.docker.modem.followProgress(stream, (err, output: PullProgress[]) => (err ? reject(err) : resolve(output)));
    }).catch((err: unknown) => {
      throw refusedError('image_pull_failed', `pulling ${image}`, err, { image });
    });
    // Once streaming has begun the engine reports failures inside the stream, with HTTP 200.
    const failure = progress.find((p) => p.error !== undefined || p.errorDetail !== undefined);
    if (failure) {
      const message = failure.errorDetail?.message ?? failure.error ?? 'unknown error';
      throw new DockerExecutorError('image_pull_failed', `pulling ${image} failed: ${message}`, { image });
    }
    this.log?.info({ image, ms: Date.now() - started }, 'image pulled');
  }

  async start(spec: SpawnSpec): Promise<StartedContainer> {
    const options = containerCreateOptions(spec, this.hardening);
    const context = { backendId: spec.backendId, image: spec.image, name: options.name };
    // Last look before the engine resolves the path (it follows symlinks); see mount-check.ts.
    const unsafeMount = spec.mount && (await unsafeMountReason(spec.mount));
    if (unsafeMount) throw new DockerExecutorError('container_create_failed', `creating container ${options.name} failed: ${unsafeMount}`, context);

    let container: Dockerode.Container;
    try {
      container = await this.createContainer(options);
    } catch (err) {
      if (isEngineUnreachable(err)) throw err;
      throw refusedError('container_create_failed', `creating container ${options.name}`, err, context);
    }

    try {
      await container.start();
      const info = await container.inspect();
      const hostPort = publishedHostPort(info);
      if (hostPort === null) {
        // Ports are released when the container stops, so no port means it already died.
        const { ExitCode: exitCode, OOMKilled: oomKilled } = info.State;
        throw new DockerExecutorError(
          'container_exited_on_start',
          `container ${options.name} exited right after starting (exit code ${exitCode}${oomKilled ? ', out of memory' : ''})`,
          { ...context, exitCode, oomKilled },
        );
      }
      this.log?.debug({ ...context, containerId: info.Id, hostPort }, 'container started');
      return { containerId: info.Id, hostPort, imageDigest: info.Image };
    } catch (err) {
      // Leave nothing half-made behind: a created container holds the name berth-<id>.
      await this.remove(container.id).catch((removeErr: unknown) => {
        this.log?.warn(
          { ...context, containerId: container.id, err: removeErr },
          'could not remove a container that failed to start',
        );
      });
      if (err instanceof DockerExecutorError || isEngineUnreachable(err)) throw err;
      throw refusedError('container_start_failed', `starting container ${options.name}`, err, {
        ...context,
        containerId: container.id,
      });
    }
  }

  /**
   * Resolves at the first HTTP response of any status from the app. Connection
   * errors mean "not yet": Docker's userland proxy accepts connections on the host
   * port before the app listens and then resets them.
   */
  async waitForHttp(address: HostAddress, options: WaitForHttpOptions): Promise<void> {
    const { signal } = options;
    const intervalMs = options.intervalMs ?? DEFAULT_WAIT_INTERVAL_MS;
    const attemptTimeoutMs = options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
    for (;;) {
      if (signal.aborted) throw waitAbortedError(address, signal);
      if (await answersHttp(address, signal, attemptTimeoutMs)) return;
      try {
        await sleep(intervalMs, undefined, { signal });
      } catch {
        throw waitAbortedError(address, signal);
      }
    }
  }

  /** Sends a signal; a container that is already stopped or gone is not an error. */
  async kill(containerId: string, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    try {
      await this.docker.getContainer(containerId).kill({ signal });
    } catch (err) {
      const status = engineStatus(err);
      if (status === 304 || status === 404 || status === 409) return;
      throw err;
    }
  }

  /** Removes the container, running or not, with its anonymous volumes. */
  async remove(containerId: string): Promise<void> {
    try {
      await this.docker.getContainer(containerId).remove({ force: true, v: true });
    } catch (err) {
      const status = engineStatus(err);
      if (status === 404) return;
      // Someone else is removing it already: the outcome is the same.
      if (status === 409 && /already in progress/i.test(engineMessage(err))) return;
      throw err;
    }
  }

  async inspect(containerId: string): Promise<ContainerState | undefined> {
    try {
      return containerStateFromInspect(await this.docker.getContainer(containerId).inspect());
    } catch (err) {
      if (engineStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /** Every container of this installation on this node, running or not (for reconciling). */
  async listManaged(scope: ContainerScope): Promise<ContainerState[]> {
    const containers = await this.docker.listContainers({
      all: true,
      filters: { label: managedLabelFilter(scope) },
    });
    // The list has neither exit codes nor the OOM flag, so inspect each one;
    // one that vanished in between is simply left out.
    const states = await Promise.all(containers.map((c) => this.inspect(c.Id)));
    return states.filter((s): s is ContainerState => s !== undefined);
  }

  /** Follows a container's output; see container-logs.ts. */
  followLogs(containerId: string, options: FollowLogsOptions): Promise<void> {
    return followContainerLogs(this.docker, containerId, options);
  }

  /** One resource sample now, or undefined when the container is not running. */
  sampleStats(containerId: string): Promise<MetricsSample | undefined> {
    return sampleContainerStats(this.docker, containerId);
  }

  /** Live resource samples, about one a second, until the container stops or the signal aborts. */
  streamStats(containerId: string, signal: AbortSignal): AsyncGenerator<MetricsSample> {
    return streamContainerStats(this.docker, containerId, signal);
  }

  /** Follows exits and removals of this installation's containers until the returned function is called. */
  watchEvents(
    scope: ContainerScope,
    onEvent: (event: ContainerEvent) => void,
    options: WatchEventsOptions = {},
  ): () => void {
    const watcher = new ContainerEventWatcher(this.docker, scope, onEvent, options, this.log);
    watcher.start();
    return () => watcher.stop();
  }
}

interface PullProgress {
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
}

function waitAbortedError(address: HostAddress, signal: AbortSignal): Error {
  const error = new Error(`no HTTP answer on ${formatAddress(address)} before the wait was aborted`, {
    cause: signal.reason,
  });
  error.name = 'AbortError';
  return error;
}

/** One attempt: true on any response, false on a connection error or timeout. */
function answersHttp({ host, port }: HostAddress, signal: AbortSignal, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    // agent: false so no keep-alive socket outlives the probe.
    const options = { host, port, path: '/', method: 'GET', agent: false, signal, timeout: timeoutMs };
    const req = request(options, (res) => {
      res.on('error', () => undefined);
      res.destroy();
      resolve(true);
    });
    req.on('timeout', () => req.destroy(new Error(`no response within ${timeoutMs} ms`)));
    req.on('error', () => resolve(false));
    req.end();
  });
}

// ---------------------------------------------------------------------------
// Event stream

/** The fields berth reads from a line of GET /events. */
interface DockerEventMessage {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

type WatcherState = 'connecting' | 'streaming' | 'waiting' | 'stopped';

/**
 * One subscription to GET /events that survives engine restarts. Events are
 * handled one at a time, in order, because handling `die` awaits an inspect and
 * a `destroy` right behind it must not overtake it.
 */
class ContainerEventWatcher {
  private state: WatcherState = 'connecting';
  /** Streams opened so far; every one after the first is a reconnect. */
  private connections = 0;
  /** When the first stream opened, in seconds: the resume point if no event came yet. */
  private firstConnectedAt = 0;
  private abortController: AbortController | undefined;
  private stream: NodeJS.ReadableStream | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /**
   * Resume point in whole seconds (the resolution of `since`), and the events
   * already handled at or after it: `since` is inclusive, so a reconnect replays
   * the last second and those replays must be dropped.
   */
  private watermark: number | undefined;
  private readonly handledAtWatermark = new Set<string>();
  /** Containers with an `oom` event, for when the container is gone before `die` is handled. */
  private readonly oomSeen = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  private readonly reconnectDelayMs: number;

  constructor(
    private readonly docker: Dockerode,
    private readonly scope: ContainerScope,
    private readonly onEvent: (event: ContainerEvent) => void,
    private readonly options: WatchEventsOptions,
    private readonly log: Logger | undefined,
  ) {
    this.reconnectDelayMs = options.reconnectDelayMs ?? DEFAULT_RECONNECT_DELAY_MS;
  }

  start(): void {
    void this.connect();
  }

  stop(): void {
    if (this.isStopped()) return;
    this.setState('stopped');
    clearTimeout(this.reconnectTimer);
    this.abortController?.abort();
    destroyStream(this.stream);
  }

  // A method rather than a comparison, so TypeScript does not carry a narrowing
  // of `state` across an await during which stop() may have been called.
  private isStopped(): boolean {
    return this.state === 'stopped';
  }

  private setState(state: WatcherState): void {
    if (state === this.state) return;
    this.log?.debug({ node: this.scope.nodeName, from: this.state, to: state }, 'event watcher state');
    this.state = state;
  }

  private async connect(): Promise<void> {
    if (this.isStopped()) return;
    this.setState('connecting');
    const abortController = new AbortController();
    this.abortController = abortController;
    // Until an event is seen, resume from when the first stream was opened. This
    // compares our clock with the engine's, which is fine for a local engine.
    if (this.watermark === undefined && this.connections > 0) this.watermark = this.firstConnectedAt;

    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.getEvents({
        ...(this.watermark !== undefined ? { since: this.watermark } : {}),
        filters: {
          type: ['container'],
          event: ['die', 'destroy', 'oom'],
          label: managedLabelFilter(this.scope),
        },
        abortSignal: abortController.signal,
      });
    } catch (err) {
      if (this.isStopped()) return;
      this.log?.warn({ node: this.scope.nodeName, err }, 'could not open the Docker event stream; retrying');
      this.scheduleReconnect();
      return;
    }
    if (this.isStopped()) {
      stream.on('error', () => undefined);
      destroyStream(stream);
      return;
    }

    if (this.connections === 0) this.firstConnectedAt = Math.floor(Date.now() / 1000);
    this.connections += 1;
    this.stream = stream;
    this.setState('streaming');
    if (this.connections > 1) {
      this.log?.info({ node: this.scope.nodeName, since: this.watermark }, 'Docker event stream reconnected');
      this.options.onReconnect?.();
    }

    const lines = new LineSplitter((line) => this.handleLine(line));
    let ended = false;
    const onEnd = (err?: unknown) => {
      if (ended) return;
      ended = true;
      if (this.isStopped()) return;
      this.log?.warn({ node: this.scope.nodeName, err }, 'Docker event stream ended; reconnecting');
      this.scheduleReconnect();
    };
    stream.on('data', (chunk: Buffer | string) => lines.write(chunk));
    stream.on('error', onEnd);
    stream.on('end', () => onEnd());
    stream.on('close', () => onEnd());
  }

  private scheduleReconnect(): void {
    this.setState('waiting');
    destroyStream(this.stream);
    this.stream = undefined;
    this.reconnectTimer = setTimeout(() => void this.connect(), this.reconnectDelayMs);
  }

  private handleLine(line: string): void {
    let message: DockerEventMessage;
    try {
      message = JSON.parse(line) as DockerEventMessage;
    } catch {
      this.log?.warn(
        { node: this.scope.nodeName, line: line.slice(0, 200) },
        'unparsable line in the Docker event stream',
      );
      return;
    }
    if (this.isReplay(message)) return;
    this.queue = this.queue
      .then(() => this.dispatch(message))
      .catch((err: unknown) => this.log?.error({ node: this.scope.nodeName, err }, 'handling a Docker event failed'));
  }

  private isReplay(message: DockerEventMessage): boolean {
    const time = message.time;
    if (typeof time !== 'number') return false;
    // timeNano loses precision in JSON.parse, but the same line always parses to the same number.
    const key = `${message.timeNano ?? time}|${message.Actor?.ID ?? message.id}|${message.Action ?? message.status}`;
    if (this.watermark === undefined || time > this.watermark) {
      this.watermark = time;
      this.handledAtWatermark.clear();
    } else if (time < this.watermark || this.handledAtWatermark.has(key)) {
      return true;
    }
    this.handledAtWatermark.add(key);
    return false;
  }

  private async dispatch(message: DockerEventMessage): Promise<void> {
    const containerId = message.Actor?.ID ?? message.id;
    const attributes = message.Actor?.Attributes ?? {};
    const backendId = attributes[LABELS.backendId];
    if (!containerId || backendId === undefined || this.isStopped()) return;

    switch (message.Action ?? message.status) {
      case 'oom':
        // cgroup v1 reports the OOM kill as its own event just before `die`.
        this.oomSeen.add(containerId);
        return;
      case 'die': {
        const parsed = Number.parseInt(attributes.exitCode ?? '', 10);
        const exitCode = Number.isNaN(parsed) ? null : parsed;
        const state = await this.inspectExit(containerId);
        const oomKilled = state?.oomKilled ?? this.oomSeen.has(containerId);
        this.oomSeen.delete(containerId);
        // A force-remove marks the container as removing before it kills it.
        this.emit({ type: 'exited', containerId, backendId, exitCode, oomKilled, removing: state?.removing ?? true });
        return;
      }
      case 'destroy':
        this.oomSeen.delete(containerId);
        this.emit({ type: 'removed', containerId, backendId });
        return;
      default:
        return;
    }
  }

  /** The engine's verdict, or undefined when the container is already gone. */
  private async inspectExit(containerId: string): Promise<{ oomKilled: boolean; removing: boolean } | undefined> {
    try {
      const info = await this.docker.getContainer(containerId).inspect();
      return { oomKilled: info.State.OOMKilled, removing: info.State.Status === 'removing' };
    } catch (err) {
      if (engineStatus(err) === 404) return undefined;
      throw err;
    }
  }

  private emit(event: ContainerEvent): void {
    if (this.isStopped()) return;
    try {
      this.onEvent(event);
    } catch (err) {
      this.log?.error({ node: this.scope.nodeName, err, event }, 'container event handler threw');
    }
  }
}

function destroyStream(stream: NodeJS.ReadableStream | undefined): void {
  const destroy = (stream as { destroy?: () => void } | undefined)?.destroy;
  if (destroy) destroy.call(stream);
}
