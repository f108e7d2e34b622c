/**
 * The container engine behind the scheduler, on Docker through dockerode: one
 * container per backend, its port 8080 published on the node's address,
 * resource limits mapped to HostConfig (create-options.ts), and the engine's
 * event stream turned into `exited` / `removed` events (event-watcher.ts). The
 * scheduler decides; this file only does.
 */
import type Dockerode from 'dockerode';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatAddress, type HostAddress } from '../../src/core/address.ts';
import type { Logger } from '../../src/core/logger.ts';
import type {
  ContainerEngine,
  ContainerEvent,
  ContainerScope,
  ContainerState,
  EngineCapabilities,
  SpawnSpec,
  StartedContainer,
  WaitForHttpOptions,
  WatchEventsOptions,
  EngineReader,
  ImageInfo,
  ImageReferences,
  MetricsSample,
  EngineImage,
  StatsTarget,
} from '../engine.ts';
import { followContainerLogs, type FollowLogsOptions } from './container-logs.ts';
import { sampleContainerStats, streamContainerStats } from './container-stats.ts';
import { inspectImageReferences, listRepositoryImages } from './images.ts';
import {
  capabilitiesFromInfo,
  containerCreateOptions,
  containerStateFromInspect,
  DEFAULT_HARDENING,
  managedLabelFilter,
  publishedHostPort,
  runningStateFromListing,
  type ContainerHardening,
  type DockerInfoLimits,
} from './create-options.ts';
import { isEngineUnreachable } from '../engine.ts';
import { ensureBackendNetwork } from './docker-network.ts';
import { DockerEngineError, engineStatus, engineMessage, refusedError } from './errors.ts';
import { ContainerEventWatcher } from './event-watcher.ts';
import { unsafeMountReason } from './mount-check.ts';

// Short: every interval spent polling is added to the cold start (half of it on average). A probe
// is one refused or answered connection on loopback, far cheaper than the milliseconds it saves.
const DEFAULT_WAIT_INTERVAL_MS = 10;
// How long an image seen in the engine is taken to be there without asking again: spawns in a burst
// skip the inspect round trip, and an image removed meanwhile fails its start with a clear error.
const IMAGE_SEEN_TTL_MS = 10_000;
const DEFAULT_ATTEMPT_TIMEOUT_MS = 1_000;
const PING_TIMEOUT_MS = 3_000;

export class DockerEngine implements ContainerEngine, EngineReader {
  private capabilitiesPromise: Promise<EngineCapabilities> | undefined;
  private readonly log: Logger | undefined;

  private networkReady: Promise<void> | undefined;
  /** When `imageExists` last found each image (IMAGE_SEEN_TTL_MS). */
  private readonly imagesSeen = new Map<string, number>();
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
    const seenAt = this.imagesSeen.get(image);
    if (seenAt !== undefined && Date.now() - seenAt < IMAGE_SEEN_TTL_MS) return true;
    try {
      await this.docker.getImage(image).inspect();
      this.rememberImage(image);
      return true;
    } catch (err) {
      this.imagesSeen.delete(image);
      if (engineStatus(err) === 404) return false;
      throw err;
    }
  }

  private rememberImage(image: string): void {
    // Bounded: image references come from services, not from requests.
    if (this.imagesSeen.size >= 1000) this.imagesSeen.clear();
    this.imagesSeen.set(image, Date.now());
  }

  async pullImage(image: string): Promise<void> {
    // An image id names no repository: only a registry holding a tag can serve it,
    // and asking Docker would send it to Docker Hub as `library/sha256`.
    if (/^sha256:[0-9a-f]+$/i.test(image)) {
      throw new DockerEngineError(
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
      throw new DockerEngineError('image_pull_failed', `pulling ${image} failed: ${message}`, { image });
    }
    this.log?.info({ image, ms: Date.now() - started }, 'image pulled');
  }

  async start(spec: SpawnSpec): Promise<StartedContainer> {
    const options = containerCreateOptions(spec, this.hardening);
    const context = { backendId: spec.backendId, image: spec.image, name: options.name };
    // Last look before the engine resolves the path (it follows symlinks); see mount-check.ts.
    const unsafeMount = spec.mount && (await unsafeMountReason(spec.mount));
    if (unsafeMount) throw new DockerEngineError('container_create_failed', `creating container ${options.name} failed: ${unsafeMount}`, context);

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
        throw new DockerEngineError(
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
      if (err instanceof DockerEngineError || isEngineUnreachable(err)) throw err;
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
    // A running container's state is in the list. The list has neither exit codes nor the OOM flag,
    // so any other is inspected; one that vanished in between is simply left out. (Inspecting all of
    // them made every periodic reconcile of 500 backends 500 engine calls, and the API's p99 5× worse.)
    const states = await Promise.all(containers.map((c) => runningStateFromListing(c) ?? this.inspect(c.Id)));
    return states.filter((s): s is ContainerState => s !== undefined);
  }

  /** Follows a container's output; see container-logs.ts. */
  followLogs(containerId: string, options: FollowLogsOptions): Promise<void> {
    return followContainerLogs(this.docker, containerId, options);
  }

  listRepositoryImages(repository: string): Promise<ImageInfo[]> {
    return listRepositoryImages(this.docker, repository);
  }

  imageReferences(reference: string): Promise<ImageReferences | undefined> {
    return inspectImageReferences(this.docker, reference);
  }

  /** One resource sample now, or undefined when the container is not running. */
  sampleStats(containerId: string): Promise<MetricsSample | undefined> {
    return sampleContainerStats(this.docker, containerId);
  }

  /** Live resource samples, about one a second, until the container stops or the signal aborts. */
  streamStats(target: StatsTarget, signal: AbortSignal): AsyncGenerator<MetricsSample> {
    return streamContainerStats(this.docker, target.containerId, signal);
  }

  async listImages(): Promise<EngineImage[]> {
    const images = await this.docker.listImages();
    return images.map((image) => ({ id: image.Id, repoTags: image.RepoTags ?? [], repoDigests: image.RepoDigests ?? [], created: image.Created }));
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
