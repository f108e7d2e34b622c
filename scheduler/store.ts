import type { BackendStatus, StatusDetails, StatusEvent, TerminationKind, TerminationReason } from '../src/core/backend-status.ts';
import type { BindMount, ContainerSecurity, EngineCapabilities, EngineImage, LogLine, MetricsSample, ResourceLimits, StartedContainer } from './engine.ts';

/** What a node says of itself with each heartbeat. */
export interface NodeHeartbeatRecord {
  name: string;
  address: string;
  at: Date;
  engineOk: boolean;
  engineError: string | null;
  capabilities: EngineCapabilities;
  capacity: { maxBackends: number; warm?: Record<string, { warmed: number; starting: number }> };
  /** What the engine holds; left out when it could not be listed. */
  images?: EngineImage[];
}

/** What the reconcile reads of every live backend. */
export type LiveBackend = Pick<ScheduledBackend, 'id' | 'status' | 'containerId'>;

/** What the scheduler knows of a backend it runs. */
export interface ScheduledBackend {
  id: string;
  accountName: string;
  serviceName: string;
  environmentName: string;
  key: string | null;
  fencingToken: number | null;
  image: string;
  env: Record<string, string>;
  mount: BindMount | null;
  limits: ResourceLimits;
  security?: ContainerSecurity;
  status: BackendStatus;
  containerId: string | null;
  createdAt: Date;
  /** The node it is placed on; null for backends made before nodes existed. */
  nodeName: string | null;
}

/**
 * The scheduler's view of storage, implemented in src/backends/ on the
 * database. The scheduler never touches SQL; it reads backends, records steps
 * and hears every step recorded by any berth process.
 */
export interface SchedulerStore extends WarmPoolStore {
  /** Id of this installation; labels containers so another installation's are never touched. */
  readonly instanceId: string;
  findBackend(id: string): Promise<ScheduledBackend | undefined>;
  /**
   * This node's backends that have not terminated, as the reconcile compares
   * them with the engine: a few columns, since it runs every few seconds over
   * every backend (the whole rows of 500 cost 5–20 ms of berth's thread).
   */
  listLiveBackends(): Promise<LiveBackend[]>;
  /** Registers the node or renews its lease; `startedAt` on the first beat of a start. */
  writeHeartbeat(beat: NodeHeartbeatRecord, startedAt?: Date): Promise<void>;
  /** Backends whose metrics someone streams now. */
  listWatchedBackends(now: Date): Promise<string[]>;
  /** Announces a metrics sample of a watched backend to the API processes that stream it. */
  publishMetrics(backendId: string, sample: MetricsSample): Promise<void>;
  /** Live backends of nodes whose lease ran out before `before` (other nodes', by then). */
  listBackendsOfLostNodes(before: Date): Promise<Array<{ id: string; nodeName: string }>>;
  /** Records a step if it moves the backend forward; undefined when it would not. */
  record(id: string, status: BackendStatus, details?: StatusDetails): Promise<StatusEvent | undefined>;
  /** Why and how the backend is being terminated, if it is. */
  latestTermination(id: string): Promise<{ reason: TerminationReason | null; kind: TerminationKind | null } | undefined>;
  /** Remembers where the backend runs; the image digest only when known. */
  /**
   * Remembers where the backend runs and records `waiting` with its address, in
   * one transaction; with `starting`, records `starting` first in the same one (a warm start).
   */
  recordWaiting(
    id: string,
    container: Omit<StartedContainer, 'imageDigest'> & { imageDigest?: string },
    address: string,
    options?: { starting?: boolean },
  ): Promise<StatusEvent | undefined>;
  /** A backend to start, with the id of its key's backend still being stopped (it starts only after that one). */
  findBackendToSpawn(id: string): Promise<{ backend: ScheduledBackend; predecessor: string | null } | undefined>;
  /** The backend of a key waiting for its predecessor to end. */
  findWaitingSuccessor(backend: ScheduledBackend): Promise<string | undefined>;
  /** Ready backends idle past max_idle_seconds or older than lifetime_limit_seconds. */
  listSweepable(now: Date): Promise<Array<{ id: string; reason: 'idle' | 'lifetime' }>>;
  subscribe(listener: (event: StatusEvent) => void): () => void;
  /** Stores output lines and announces them to log streams. */
  appendLogs(id: string, lines: LogLine[]): Promise<void>;
  /** Time of the last stored line, to resume following after a restart. */
  latestLogTime(id: string): Promise<Date | undefined>;
  /** Raises max_mem_bytes when `bytes` is higher. */
  recordMemoryPeak(id: string, bytes: number): Promise<void>;
  /** Drops logs of backends terminated before `before`. */
  deleteExpiredLogs(before: Date): Promise<number>;
  /** Deletes at most `limit` backends terminated before `before`, with everything recorded of them; returns how many. */
  deleteExpiredBackends(before: Date, limit: number): Promise<number>;
}

/** One environment's pool as the database wants it. */
export interface WarmPoolSpec {
  accountName: string;
  serviceName: string;
  environmentName: string;
  /** `repository:tag` (or a digest) the pool runs. */
  image: string;
  size: number;
  security: ContainerSecurity;
  /** The image the environment was marked not warmable for, if any. */
  notWarmableImage: string | null;
}

export interface WarmPoolStore {
  /** This node's pools; none while it drains. */
  listWarmPools(): Promise<WarmPoolSpec[]>;
  markNotWarmable(pool: Pick<WarmPoolSpec, 'accountName' | 'serviceName' | 'environmentName'>, image: string, reason: string): Promise<void>;
}
