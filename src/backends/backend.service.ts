import type { Kysely, Transaction } from 'kysely';
import { customAlphabet, nanoid } from 'nanoid';
import { isEngineUnreachable } from '../../scheduler/engine.ts';
import type { EngineCapabilities, ResourceLimits } from '../../scheduler/engine.ts';
import type { Database } from '../database.ts';
import { apiTokenExists } from '../accounts/account.repository.ts';
import { ApiTokenRevokedError } from '../accounts/account.service.ts';
import { ConflictError, NotFoundError, ValidationError } from '../core/errors.ts';
import { parseInput } from '../http/validation.ts';
import { ServiceNotFoundError } from '../services/service.service.ts';
import { findService, listEnvironments } from '../services/service.repository.ts';
import type { ImagePolicy } from '../services/image-policy.ts';
import { checkAccountBackendLimit } from './account-quota.ts';
import { checkLimitCeilings, withLimitDefaults, type LimitPolicy } from './resource-limits.ts';
import type { BackendStatus, StatusEvent } from '../core/backend-status.ts';
import {
  countBackendsByStatus,
  findBackend,
  findLatestStatusRows,
  findLiveBackendByKey,
  findReadyTimes,
  incrementFencingToken,
  insertBackend,
  insertStatusRow,
  latestStatusRow,
  listLiveBackends,
  listServiceBackends,
  listStatusRows,
  lockKey,
  markServiceSpawned,
} from './backend.repository.ts';
import { insertConnectionToken, insertConnectionTokenAndTouch } from './connection-token.repository.ts';
import { HeldKeyBatcher } from './held-key-batcher.ts';
import { RESERVED_ENV_NAMES, SPAWN_CONFIG, type CONNECT_BODY, type SpawnConfig } from './backend.schemas.ts';
import type { BackendRow, BackendStatusRow } from './backend.table.ts';
import { resolveMount } from './mounts.ts';
import { StatusRecorder, statusRowToEvent } from './status-recorder.ts';
import { checkAuth } from './connect-input.ts';
import { UnenforceableLimitError, type NodeService, type Placement } from '../nodes/node.service.ts';
import type { z } from 'zod';

const newBackendId = customAlphabet('0123456789abcdefghijklmnopqrstuvwxyz', 10);
export const DEFAULT_MAX_IDLE_SECONDS = 300;

export type ConnectBody = z.output<typeof CONNECT_BODY>;

export interface ConnectResult {
  backendId: string;
  spawned: boolean;
  status: BackendStatus;
  token: string;
  secretToken: string;
}

export interface Backend {
  id: string;
  accountName: string;
  serviceName: string;
  environmentName: string;
  cluster: string;
  key: string | null;
  imageDigest: string | null;
  maxMemBytes: number | null;
  createdAt: Date;
  status: BackendStatus;
  statusTime: Date;
  /** The current status with its details, when it was read. */
  latestStatus: StatusEvent | null;
  /** The node it is placed on (null for backends made before nodes existed). */
  nodeName: string | null;
  /** Set once the container exists. */
  containerId: string | null;
}

export class BackendNotFoundError extends NotFoundError {
  constructor(id: string) {
    super('backend_not_found', `backend "${id}" does not exist`, { backend_id: id });
  }
}

/** The code the Jamsocket CLI looks for to report "already terminated". */
export class BackendNotRunningError extends ConflictError {
  constructor(id: string) {
    super('BackendNotRunning', `backend "${id}" is not running`, { backend_id: id });
  }
}

export class NoBackendForKeyError extends NotFoundError {
  constructor(key: string | undefined) {
    super(
      'no_backend_for_key',
      key === undefined ? 'spawn is false and no key was given, so there is no backend to return' : `no running backend holds key "${key}" and spawn is false`,
      key === undefined ? undefined : { key },
    );
  }
}

/** Why an engine cannot enforce a limit, by the capability it lacks. */
const UNENFORCEABLE: Record<keyof EngineCapabilities, [string, string]> = {
  memoryLimit: ['memory_limit_bytes', 'it has no memory cgroup'],
  swapLimit: ['memory_limit_bytes', 'it has no swap accounting'],
  cpuCfs: ['cpu_period_percent', 'it has no CFS quota support'],
  diskLimit: ['disk_limit_bytes', 'its storage driver does not enforce a size (needs overlay2 on xfs with pquota, btrfs, zfs or devicemapper)'],
};

export interface BackendServiceOptions {
  db: Kysely<Database>;
  /** Where new backends are placed. */
  nodes: NodeService;
  mountBaseDir: string | undefined;
  /** Which image a service may run (src/services/image-policy.ts). */
  imagePolicy: ImagePolicy;
  limitPolicy: LimitPolicy;
  /** BERTH_MAX_BACKENDS_PER_ACCOUNT. */
  maxBackendsPerAccount: number;
}

export class BackendService {
  private readonly db: Kysely<Database>;
  private readonly nodes: NodeService;
  private readonly mountBaseDir: string | undefined;
  private readonly imagePolicy: ImagePolicy;
  private readonly limitPolicy: LimitPolicy;
  private readonly maxBackendsPerAccount: number;
  readonly recorder: StatusRecorder;
  private readonly heldKeys: HeldKeyBatcher;

  constructor(options: BackendServiceOptions) {
    this.db = options.db;
    this.nodes = options.nodes;
    this.mountBaseDir = options.mountBaseDir;
    this.imagePolicy = options.imagePolicy;
    this.limitPolicy = options.limitPolicy;
    this.maxBackendsPerAccount = options.maxBackendsPerAccount;
    this.recorder = new StatusRecorder(options.db);
    this.heldKeys = new HeldKeyBatcher(options.db);
  }

  /**
   * Returns the backend holding the key, or spawns one. For a held key this is
   * one statement (`joinHeldKeys`, shared with the connects that arrive at
   * the same time: `HeldKeyBatcher`): it checks the caller's API token
   * (`uncheckedTokenId`, from a cached principal; null when there is nothing
   * to check), finds the backend, mints the connection token and counts the
   * connect as activity. A revoked token gets ApiTokenRevokedError.
   */
  async connect(
    accountName: string,
    serviceName: string,
    environmentName: string,
    body: ConnectBody,
    uncheckedTokenId: string | null = null,
  ): Promise<ConnectResult> {
    const spawn = parseSpawn(body.spawn);
    const auth = checkAuth(body.auth);
    const connection = { username: body.user ?? null, auth };
    // A held key proves its service exists (backends go with their service): no other read is needed.
    if (body.key !== undefined) {
      const token = nanoid(32);
      const joined = await this.heldKeys.join({ apiTokenId: uncheckedTokenId, accountName, serviceName, key: body.key, token: { token, ...connection } });
      if (!joined.apiTokenLive) throw new ApiTokenRevokedError(uncheckedTokenId!);
      if (joined.backend) {
        const { id, status, secret_token: secretToken } = joined.backend;
        return { backendId: id, spawned: false, status, token, secretToken };
      }
    } else if (uncheckedTokenId !== null && !(await apiTokenExists(this.db, uncheckedTokenId))) {
      throw new ApiTokenRevokedError(uncheckedTokenId);
    }
    const service = await findService(this.db, accountName, serviceName);
    if (!service) throw new ServiceNotFoundError(accountName, serviceName);
    if (spawn === null) throw new NoBackendForKeyError(body.key);

    const environment = (await listEnvironments(this.db, accountName, serviceName)).find((env) => env.name === environmentName);
    if (!environment) {
      throw new NotFoundError('environment_not_found', `service "${serviceName}" has no environment "${environmentName}"`, {
        environment: environmentName,
      });
    }
    if (spawn.cluster !== undefined && spawn.cluster !== environment.cluster) {
      throw new ValidationError('body.spawn.cluster', `"body.spawn.cluster" must be "${environment.cluster}", the only cluster of this berth`);
    }
    const env = spawn.executable?.env ?? {};
    const reserved = RESERVED_ENV_NAMES.find((name) => name in env);
    if (reserved) {
      throw new ValidationError(`body.spawn.executable.env.${reserved}`, `"${reserved}" is set by berth in every backend and cannot be overridden`, 'reserved_env_var');
    }
    const limits = this.checkLimits(spawn);
    const placement = await this.placeBackend(spawn, limits);
    const backendId = newBackendId();
    // A key-less backend holds its own id as key, so that it too has a key and a fencing token (as in Plane).
    const key = body.key ?? backendId;
    const mount = await resolveMount(this.mountBaseDir, spawn.executable?.mount, { accountName, serviceName, key: body.key, backendId });
    const tag = spawn.tag ?? environment.image_tag;
    const image = await this.imagePolicy.imageReference(service.image_repository, tag, spawn.tag !== undefined ? 'body.spawn.tag' : `environments.${environmentName}.image_tag`);

    return this.db.transaction().execute(async (trx) => {
      await lockKey(trx, accountName, serviceName, key);
      // Another connect may have spawned for this key while we waited for the lock.
      const held = await findLiveBackendByKey(trx, accountName, serviceName, key);
      if (held) return this.joinBackend(held, connection, trx);
      await checkAccountBackendLimit(trx, accountName, this.maxBackendsPerAccount);
      const fencingToken = await incrementFencingToken(trx, accountName, serviceName, key);
      const now = new Date();
      const secretToken = nanoid(43);
      await insertBackend(trx, {
        id: backendId,
        account_name: accountName,
        service_name: serviceName,
        environment_name: environmentName,
        cluster: environment.cluster,
        key,
        fencing_token: fencingToken,
        image,
        image_digest: null,
        secret_token: secretToken,
        max_idle_seconds: spawn.max_idle_seconds ?? DEFAULT_MAX_IDLE_SECONDS,
        lifetime_limit_seconds: spawn.lifetime_limit_seconds ?? null,
        env: JSON.stringify(env),
        mount: mount ? JSON.stringify(mount) : null,
        resource_limits: JSON.stringify(limits),
        container_security: JSON.stringify({
          ...(service.container_user !== null ? { user: service.container_user } : {}),
          ...(service.read_only_root ? { readOnlyRoot: true } : {}),
          ...(service.cap_add.length > 0 ? { capAdd: service.cap_add } : {}),
        }),
        status: 'scheduled',
        status_time: now,
        container_id: null,
        host_port: null,
        node_name: placement.name,
        host_address: placement.address,
        last_activity_at: now,
        max_mem_bytes: null,
        created_at: now,
      });
      await insertStatusRow(trx, {
        backend_id: backendId,
        status: 'scheduled',
        time: now,
        last_status: null,
        termination_reason: null,
        termination_kind: null,
        exit_error: null,
        exit_code: null,
        message: null,
        address: null,
      });
      const token = nanoid(32);
      await insertConnectionToken(trx, { token, backend_id: backendId, ...connection });
      await markServiceSpawned(trx, accountName, serviceName, environmentName, now);
      return { backendId, spawned: true, status: 'scheduled' as const, token, secretToken };
    });
  }

  /** Mints a connection token for a running backend; a connect counts as activity. */
  /** Connect to a backend found holding the key under the key's lock (another connect spawned it meanwhile). */
  private async joinBackend(
    backend: BackendRow,
    connection: { username: string | null; auth: Record<string, unknown> | null },
    trx: Transaction<Database>,
  ): Promise<ConnectResult> {
    const token = nanoid(32);
    await insertConnectionTokenAndTouch(trx, { token, backend_id: backend.id, ...connection }, new Date());
    return { backendId: backend.id, spawned: false, status: backend.status, token, secretToken: backend.secret_token };
  }

  /** Maps the requested limits, refusing any above the ceilings; fills in the defaults. */
  private checkLimits(spawn: SpawnConfig): ResourceLimits {
    const requested = spawn.executable?.resource_limits;
    if (!requested) return withLimitDefaults({}, this.limitPolicy);
    checkLimitCeilings(requested, this.limitPolicy);
    return withLimitDefaults({
      ...(requested.memory_limit_bytes !== undefined ? { memoryLimitBytes: requested.memory_limit_bytes } : {}),
      ...(requested.cpu_period_percent !== undefined
        ? { cpuPeriodPercent: requested.cpu_period_percent, ...(requested.cpu_period !== undefined ? { cpuPeriod: requested.cpu_period } : {}) }
        : {}),
      ...(requested.cpu_time_limit !== undefined ? { cpuTimeLimitSeconds: requested.cpu_time_limit } : {}),
      ...(requested.disk_limit_bytes !== undefined ? { diskLimitBytes: requested.disk_limit_bytes } : {}),
    }, this.limitPolicy);
  }

  /**
   * The node a new backend goes to. A limit the caller asked for that no live
   * node can enforce is refused (400), never ignored; without a node, 503.
   */
  private async placeBackend(spawn: SpawnConfig, limits: ResourceLimits): Promise<Placement> {
    const requested = spawn.executable?.resource_limits ?? {};
    // Defaults the operator set are not the caller's: they only need enforcing where they can be.
    const asked: ResourceLimits = {
      ...(requested.memory_limit_bytes !== undefined ? { memoryLimitBytes: limits.memoryLimitBytes } : {}),
      ...(requested.cpu_period_percent !== undefined ? { cpuPeriodPercent: limits.cpuPeriodPercent } : {}),
      ...(requested.disk_limit_bytes !== undefined ? { diskLimitBytes: limits.diskLimitBytes } : {}),
    };
    try {
      return await this.nodes.place(asked);
    } catch (error) {
      if (!(error instanceof UnenforceableLimitError)) throw error;
      const [field, why] = UNENFORCEABLE[error.field];
      throw new ValidationError(
        `body.spawn.executable.resource_limits.${field}`,
        `no node's Docker engine can enforce "${field}": ${why}`,
        'unenforceable_limit',
      );
    }
  }

  async terminate(backend: Backend, hard: boolean): Promise<void> {
    if (backend.status === 'terminated') throw new BackendNotRunningError(backend.id);
    const recorded = await this.recorder.record(backend.id, hard ? 'hard-terminating' : 'terminating', {
      terminationReason: 'external',
      terminationKind: hard ? 'hard' : 'soft',
    });
    if (!recorded) {
      // Already terminating (a repeated soft request is a no-op), unless it finished meanwhile.
      const now = await this.requireBackend(backend.id);
      if (now.status === 'terminated') throw new BackendNotRunningError(backend.id);
    }
  }

  async requireBackend(id: string): Promise<Backend> {
    const row = await findBackend(this.db, id);
    if (!row) throw new BackendNotFoundError(id);
    return backendRowToBackend(row);
  }

  async statusHistory(id: string, afterEventId = 0): Promise<StatusEvent[]> {
    return (await listStatusRows(this.db, id, afterEventId)).map(statusRowToEvent);
  }

  async latestStatus(id: string): Promise<StatusEvent> {
    const latest = await latestStatusRow(this.db, id);
    if (!latest) throw new BackendNotFoundError(id);
    return statusRowToEvent(latest);
  }

  /** Newest first, at most 1000, each with when it first became ready. */
  async listServiceBackends(
    accountName: string,
    serviceName: string,
    range: { start?: Date; end?: Date },
  ): Promise<Array<Backend & { readyAt: Date | null }>> {
    if (!(await findService(this.db, accountName, serviceName))) throw new ServiceNotFoundError(accountName, serviceName);
    const rows = await listServiceBackends(this.db, accountName, serviceName, { ...range, limit: 1000 });
    const ids = rows.map((row) => row.id);
    const [readyTimes, latest] = await Promise.all([findReadyTimes(this.db, ids), findLatestStatusRows(this.db, ids)]);
    return rows.map((row) => ({ ...backendRowToBackend(row, latest.get(row.id)), readyAt: readyTimes.get(row.id) ?? null }));
  }

  async listRunningBackends(accountName: string): Promise<Backend[]> {
    const rows = await listLiveBackends(this.db, accountName);
    const latest = await findLatestStatusRows(this.db, rows.map((row) => row.id));
    return rows.map((row) => backendRowToBackend(row, latest.get(row.id)));
  }

  async countByStatus(): Promise<Map<BackendStatus, number>> {
    return countBackendsByStatus(this.db);
  }
}

function parseSpawn(spawn: unknown): SpawnConfig | null {
  if (spawn === undefined || spawn === true) return {};
  if (spawn === false) return null;
  if (typeof spawn !== 'object' || spawn === null || Array.isArray(spawn)) {
    throw new ValidationError('body.spawn', '"body.spawn" must be true, false or a spawn config object');
  }
  return parseInput(SPAWN_CONFIG, spawn, 'body.spawn');
}

/** `latest` (the newest status row) gives the whole current status; without it, only its name and time are known. */
export function backendRowToBackend(row: BackendRow, latest?: BackendStatusRow): Backend {
  return {
    id: row.id,
    accountName: row.account_name,
    serviceName: row.service_name,
    environmentName: row.environment_name,
    cluster: row.cluster,
    key: row.key,
    imageDigest: row.image_digest,
    maxMemBytes: row.max_mem_bytes === null ? null : Number(row.max_mem_bytes),
    createdAt: row.created_at,
    status: row.status,
    statusTime: row.status_time,
    latestStatus: latest ? statusRowToEvent(latest) : null,
    nodeName: row.node_name,
    containerId: row.container_id,
  };
}
