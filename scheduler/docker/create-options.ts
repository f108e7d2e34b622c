/** Pure mappings between berth's spawn specs and Docker's API (unit-tested without Docker). */
import type Dockerode from 'dockerode';
import { SDK_SOCKET_DIR_IN_CONTAINER } from '../warm-socket.ts';
import { CONTAINER_PORT, LABELS, type ContainerScope, type ContainerState, type EngineCapabilities, type SpawnSpec } from '../engine.ts';

export const PORT_KEY = `${CONTAINER_PORT}/tcp`;
const DEFAULT_CPU_PERIOD_MICROSECONDS = 100_000;

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
    ...(spec.pool ? { [LABELS.pool]: spec.pool.id } : { [LABELS.backendId]: spec.backendId }),
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
  if (spec.pool) {
    hostConfig.Binds = [...(hostConfig.Binds ?? []), `${spec.pool.socketDir}:${SDK_SOCKET_DIR_IN_CONTAINER}`];
  }

  return {
    name: spec.pool ? `berth-pool-${spec.pool.id}` : containerName(spec.backendId),
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

export function publishedHostPort(info: Dockerode.ContainerInspectInfo): number | null {
  const bindings = info.NetworkSettings?.Ports?.[PORT_KEY] ?? [];
  // berth publishes one binding, on the node's address.
  const binding = bindings.find((b) => b.HostPort !== '') ?? bindings[0];
  const port = Number(binding?.HostPort);
  return Number.isInteger(port) && port > 0 ? port : null;
}

export function containerStateFromInspect(info: Dockerode.ContainerInspectInfo): ContainerState {
  const running = info.State.Running;
  // A container that was created but never started has ExitCode 0 without having exited.
  const exited = !running && info.State.Status !== 'created';
  return {
    containerId: info.Id,
    backendId: info.Config.Labels?.[LABELS.backendId] ?? '',
    poolId: info.Config.Labels?.[LABELS.pool] ?? null,
    running,
    exitCode: exited ? info.State.ExitCode : null,
    oomKilled: info.State.OOMKilled,
    removing: info.State.Status === 'removing',
    hostPort: running ? publishedHostPort(info) : null,
  };
}

/**
 * The state of a running container from the engine's list, which is enough
 * for one that runs (no exit code or OOM flag to read yet); undefined for any
 * other, whose exit code and OOM flag only an inspect tells.
 */
export function runningStateFromListing(info: Dockerode.ContainerInfo): ContainerState | undefined {
  if (info.State !== 'running') return undefined;
  const published = info.Ports?.find((port) => port.PrivatePort === CONTAINER_PORT && port.Type === 'tcp' && port.PublicPort > 0);
  return {
    containerId: info.Id,
    backendId: info.Labels?.[LABELS.backendId] ?? '',
    poolId: info.Labels?.[LABELS.pool] ?? null,
    running: true,
    exitCode: null,
    oomKilled: false,
    removing: false,
    hostPort: published?.PublicPort ?? null,
  };
}

export function managedLabelFilter(scope: ContainerScope): string[] {
  return [`${LABELS.managed}=true`, `${LABELS.instance}=${scope.instanceId}`, `${LABELS.node}=${scope.nodeName}`];
}
