/**
 * What the scheduler asks of a container engine. The Docker implementation is
 * docker-executor.ts; the scheduler (scheduler.ts) drives it and records every
 * step in the database.
 */

/** Labels berth puts on every container it starts. */
export const LABELS = {
  managed: 'berth.managed',
  instance: 'berth.instance',
  backendId: 'berth.backend-id',
  account: 'berth.account',
  service: 'berth.service',
  key: 'berth.key',
  node: 'berth.node',
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
  backendId: string;
  running: boolean;
  exitCode: number | null;
  oomKilled: boolean;
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
