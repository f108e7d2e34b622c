/**
 * What the scheduler asks of a container engine: the ContainerEngine interface
 * and the types it speaks. The Docker implementation is docker/docker-engine.ts;
 * the scheduler (scheduler.ts) drives it and records every step in the
 * database. docs/kubernetes.md maps each call onto Kubernetes.
 */
import type { HostAddress } from '../src/core/address.ts';

/** Labels berth puts on every container it starts. */
export const LABELS = {
  managed: 'berth.managed',
  instance: 'berth.instance',
  backendId: 'berth.backend-id',
  account: 'berth.account',
  service: 'berth.service',
  key: 'berth.key',
  node: 'berth.node',
  /** On warm-pool containers instead of a backend id, until one is taken. */
  pool: 'berth.pool',
} as const;

/** Whose containers an engine call is about: this installation's, on this node. */
export interface ContainerScope {
  /** Installation id of this berth; containers of other installations are never touched. */
  instanceId: string;
  /** The node the containers belong to; another node's containers on a shared engine are never touched. */
  nodeName: string;
}

/** Port the app inside every container listens on (env PORT). */
export const CONTAINER_PORT = 8080;

export interface ResourceLimits {
  /** Docker Memory, with MemorySwap equal so that the limit is real. */
  memoryLimitBytes?: number;
  /** CFS period in microseconds (default 100000 when a percentage is given). */
  cpuPeriod?: number;
  /** Share of each period the container may use, 1-100 per core... as CpuQuota = period * percent / 100. */
  cpuPeriodPercent?: number;
  /** Total CPU seconds (RLIMIT_CPU soft and hard). */
  cpuTimeLimitSeconds?: number;
  /** Writable-layer size (StorageOpt size); only some storage drivers enforce it. */
  diskLimitBytes?: number;
}

/** A host directory bind-mounted read-write into the container. */
export interface BindMount {
  /** BERTH_MOUNT_BASE_DIR with symlinks resolved; every component from it down to `source` is re-checked at create. */
  base: string;
  /** Absolute host directory `{base}/{account}/{service}/{name}`. */
  source: string;
  /** Where it appears inside the container. */
  target: string;
}

/** Per-service settings the admin chose; the hardening defaults apply regardless. */
export interface ContainerSecurity {
  /** `user[:group]` or `uid[:gid]` the app runs as; default the image's. */
  user?: string;
  /** Mount the image's filesystem read-only (with a writable /tmp). */
  readOnlyRoot?: boolean;
  /** Capabilities added back after all are dropped, e.g. `NET_BIND_SERVICE`. */
  capAdd?: string[];
}

export interface SpawnSpec extends ContainerScope {
  backendId: string;
  /** The node's address: port 8080 is published on it, and proxies dial it. */
  hostIp: string;
  accountName: string;
  serviceName: string;
  key: string | null;
  /** Image reference: `repo:tag` or an image id / digest `sha256:…`. */
  image: string;
  /** Full environment, reserved variables included. */
  env: Record<string, string>;
  mount?: BindMount;
  /** A warm-pool container: no backend yet, and its SDK socket directory to mount at /jamsocket-control. */
  pool?: { id: string; socketDir: string };
  limits: ResourceLimits;
  security?: ContainerSecurity;
}

export interface StartedContainer {
  containerId: string;
  /** Port on the node's address that container port 8080 is published on. */
  hostPort: number;
  /** Image id (`sha256:…`) the container runs. */
  imageDigest: string;
}

export interface ContainerState {
  containerId: string;
  /** Empty for a warm-pool container (see poolId). */
  backendId: string;
  /** Set on warm-pool containers: the pool member's id. */
  poolId: string | null;
  running: boolean;
  exitCode: number | null;
  oomKilled: boolean;
  /** Being removed (a force-remove kills it first): an exit seen now is a loss, not the app's doing. */
  removing: boolean;
  hostPort: number | null;
}

/** What the engine reports about berth's containers as it happens. */
export type ContainerEvent =
  | {
      type: 'exited';
      containerId: string;
      backendId: string;
      exitCode: number | null;
      oomKilled: boolean;
      /** The container is being (or has been) removed: someone force-removed a running container. */
      removing: boolean;
    }
  | { type: 'removed'; containerId: string; backendId: string };

/** Which limits this engine can enforce; a limit it cannot is refused, never ignored. */
export interface EngineCapabilities {
  memoryLimit: boolean;
  swapLimit: boolean;
  cpuCfs: boolean;
  diskLimit: boolean;
}

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

/** `berth` marks berth's own lines about the backend, such as why it failed to start. */
export type LogStreamName = 'stdout' | 'stderr' | 'berth';

/** A container's output, line by line. */
export interface LogLine {
  time: Date;
  stream: LogStreamName;
  line: string;
}

/**
 * One engine: the containers of one node. Every call is scoped by the labels
 * berth puts on its containers (ContainerScope), so two nodes or two
 * installations can share an engine without touching each other's containers.
 */
export interface ContainerEngine {
  /** Which limits it can enforce; a limit it cannot is refused, never ignored. */
  capabilities(): Promise<EngineCapabilities>;
  /** Resolves when the engine answers. */
  ping(): Promise<void>;
  imageExists(image: string): Promise<boolean>;
  /** Fetches an image from its registry. */
  pullImage(image: string): Promise<void>;
  /** Creates and starts a backend's container; leaves nothing behind when it fails. */
  start(spec: SpawnSpec): Promise<StartedContainer>;
  /** Resolves at the first HTTP answer of the app at `address`. */
  waitForHttp(address: HostAddress, options: WaitForHttpOptions): Promise<void>;
  /** Sends a signal; a container already stopped or gone is not an error. */
  kill(containerId: string, signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Removes a container, running or not; a container already gone is not an error. */
  remove(containerId: string): Promise<void>;
  inspect(containerId: string): Promise<ContainerState | undefined>;
  /** Every container of the scope, running or not. */
  listManaged(scope: ContainerScope): Promise<ContainerState[]>;
  /** Exits and removals of the scope's containers, until the returned function is called. */
  watchEvents(scope: ContainerScope, onEvent: (event: ContainerEvent) => void, options?: WatchEventsOptions): () => void;
  /** A container's output from `since` until it stops or the signal aborts. */
  followLogs(
    containerId: string,
    options: { since?: Date; signal: AbortSignal; onLine: (line: LogLine) => Promise<void> | undefined | void },
  ): Promise<void>;
  /** One resource sample now, or undefined when the container is not running. */
  sampleStats(containerId: string): Promise<MetricsSample | undefined>;
  /** Every image it holds, with its names (reported with the node's heartbeat). */
  listImages(): Promise<EngineImage[]>;
}

/** The engine refused or failed what it was asked: a backend it was starting cannot start. */
export class EngineError extends Error {}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EHOSTUNREACH', 'ETIMEDOUT', 'EPIPE']);

/** True when an error means "no engine answers", as opposed to an engine saying no. */
export function isEngineUnreachable(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && UNREACHABLE_CODES.has(code);
}

export interface ImageInfo {
  /** The local image id (`sha256:…`); a locally built image has no registry digest. */
  digest: string;
  tag: string;
  repository: string;
  uploadTime: Date;
}

/** The names an image carries on the engine, to tell which repository it belongs to. */
export interface ImageReferences {
  id: string;
  /** `repository:tag` */
  repoTags: string[];
  /** `repository@sha256:…` */
  repoDigests: string[];
}

/** One resource sample of a running container (the metrics stream's fields). */
export interface MetricsSample {
  cpuUsed: number;
  sysCpu: number;
  memUsed: number;
  memLimit: number;
  memAvailable: number;
  /** Highest memory use the kernel saw (cgroup v1), or memUsed where it does not say. */
  memPeak: number;
}

/** An image as an engine lists it: its id and every name it carries. */
export interface EngineImage extends ImageReferences {
  /** When it was built, in seconds since the epoch. */
  created: number;
}

/** Whose metrics to stream: the backend, and its container on the engine. */
export interface StatsTarget {
  backendId: string;
  containerId: string;
}

/**
 * What the API reads from an engine: images for service info and digest
 * checks, live stats for the metrics stream, and a ping for health. The API
 * sees only this interface; only the process entry (src/berth.ts) builds a
 * concrete engine.
 */
export interface EngineReader {
  ping(): Promise<void>;
  /** Images of one repository, newest first. */
  listRepositoryImages(repository: string): Promise<ImageInfo[]>;
  /** The names an image (id, digest or reference) carries; undefined when the engine has no such image. */
  imageReferences(reference: string): Promise<ImageReferences | undefined>;
  /** Live samples, about one a second, until the container stops or the signal aborts. */
  streamStats(target: StatsTarget, signal: AbortSignal): AsyncGenerator<MetricsSample>;
}

/** The images of one repository among `images`, a row per tag, newest first (one tag seen on two engines, once). */
export function imagesOfRepository(images: readonly EngineImage[], repository: string): ImageInfo[] {
  const prefix = `${repository}:`;
  const seen = new Map<string, ImageInfo>();
  for (const image of images) {
    for (const repoTag of image.repoTags) {
      if (!repoTag.startsWith(prefix)) continue;
      const tag = repoTag.slice(prefix.length);
      seen.set(`${image.id} ${tag}`, { digest: image.id, tag, repository, uploadTime: new Date(image.created * 1000) });
    }
  }
  return [...seen.values()].sort((a, b) => b.uploadTime.getTime() - a.uploadTime.getTime() || a.tag.localeCompare(b.tag));
}
