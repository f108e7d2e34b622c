import type { Kysely } from 'kysely';
import type { LiveBackend, NodeHeartbeatRecord, ScheduledBackend, SchedulerStore } from '../../scheduler/store.ts';
import type { MetricsSample } from '../../scheduler/engine.ts';
import type { WarmPoolSpec } from '../../scheduler/store.ts';
import { listWarmPools, markNotWarmable } from '../nodes/warm-pool.repository.ts';
import type { LogLine } from '../../scheduler/engine.ts';
import type { Database } from '../database.ts';
import { deleteExpiredLogLines, insertLogLines, latestLogTime } from '../logs/log.repository.ts';
import type { BackendStatus, StatusDetails, StatusEvent } from '../core/backend-status.ts';
import {
  deleteTerminatedBackends,
  findBackend,
  findBackendWithDyingPredecessor,
  findScheduledBackendOfKey,
  latestTerminationRow,
  listLiveBackendsOfNode,
  listSweepableBackends,
  raiseMaxMemory,
  setBackendContainer,
} from './backend.repository.ts';
import type { BackendRow } from './backend.table.ts';
import { listBackendsOfLostNodes, listWatchedBackends, publishMetricsSample, writeNodeHeartbeat } from '../nodes/node.repository.ts';
import { metricsSampleToJson } from '../metrics/metrics-sample.ts';
import { deleteDeadProxies } from './activity.repository.ts';
import type { StatusHub } from './status-hub.ts';
import type { StatusRecorder } from './status-recorder.ts';

/** The scheduler's storage, on the database. */
export class DatabaseSchedulerStore implements SchedulerStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly recorder: StatusRecorder,
    private readonly hub: StatusHub,
    readonly instanceId: string,
    /** The node this store serves: it lists and sweeps only that node's backends. */
    private readonly nodeName: string,
    /** How long a proxy that stopped reporting still counts as alive (BERTH_PROXY_LEASE_SECONDS). */
    private readonly proxyLeaseMs: number,
  ) {}

  async findBackend(id: string): Promise<ScheduledBackend | undefined> {
    const row = await findBackend(this.db, id);
    return row && backendRowToScheduled(row);
  }

  async listLiveBackends(): Promise<LiveBackend[]> {
    return (await listLiveBackendsOfNode(this.db, this.nodeName)).map((row) => ({ id: row.id, status: row.status, containerId: row.container_id }));
  }

  listWarmPools(): Promise<WarmPoolSpec[]> {
    return listWarmPools(this.db, this.nodeName);
  }

  markNotWarmable(pool: Pick<WarmPoolSpec, 'accountName' | 'serviceName' | 'environmentName'>, image: string, reason: string): Promise<void> {
    return markNotWarmable(this.db, pool, image, reason);
  }

  listWatchedBackends(now: Date): Promise<string[]> {
    return listWatchedBackends(this.db, now);
  }

  publishMetrics(backendId: string, sample: MetricsSample): Promise<void> {
    return publishMetricsSample(this.db, JSON.stringify(metricsSampleToJson(backendId, sample)));
  }

  writeHeartbeat(beat: NodeHeartbeatRecord, startedAt?: Date): Promise<void> {
    return writeNodeHeartbeat(this.db, beat, startedAt);
  }

  async listBackendsOfLostNodes(before: Date): Promise<Array<{ id: string; nodeName: string }>> {
    return (await listBackendsOfLostNodes(this.db, before)).map((row) => ({ id: row.id, nodeName: row.node_name }));
  }

  record(id: string, status: BackendStatus, details?: StatusDetails): Promise<StatusEvent | undefined> {
    return this.recorder.record(id, status, details);
  }

  async latestTermination(id: string) {
    const row = await latestTerminationRow(this.db, id);
    return row && { reason: row.termination_reason as StatusDetails['terminationReason'] & {}, kind: row.termination_kind as StatusDetails['terminationKind'] & {} };
  }

  recordWaiting(
    id: string,
    container: { containerId: string; hostPort: number; imageDigest?: string },
    address: string,
    { starting = false }: { starting?: boolean } = {},
  ): Promise<StatusEvent | undefined> {
    const steps = [...(starting ? [{ status: 'starting' as const }] : []), { status: 'waiting' as const, details: { address } }];
    return this.recorder.recordSteps(id, steps, (trx) =>
      setBackendContainer(trx, id, {
        container_id: container.containerId,
        host_port: container.hostPort,
        ...(container.imageDigest ? { image_digest: container.imageDigest } : {}),
      }),
    );
  }

  async findBackendToSpawn(id: string): Promise<{ backend: ScheduledBackend; predecessor: string | null } | undefined> {
    const row = await findBackendWithDyingPredecessor(this.db, id);
    return row && { backend: backendRowToScheduled(row), predecessor: row.predecessor };
  }

  async findWaitingSuccessor(backend: ScheduledBackend): Promise<string | undefined> {
    if (backend.key === null) return undefined;
    return findScheduledBackendOfKey(this.db, { ...backend, key: backend.key });
  }

  async listSweepable(now: Date) {
    // A proxy past its lease is dead: its open connections no longer keep anything alive.
    await deleteDeadProxies(this.db, new Date(now.getTime() - this.proxyLeaseMs));
    return listSweepableBackends(this.db, now, this.proxyLeaseMs, this.nodeName);
  }

  subscribe(listener: (event: StatusEvent) => void): () => void {
    return this.hub.subscribe('*', listener);
  }

  appendLogs(id: string, lines: LogLine[]): Promise<void> {
    return insertLogLines(this.db, id, lines);
  }

  latestLogTime(id: string): Promise<Date | undefined> {
    return latestLogTime(this.db, id);
  }

  recordMemoryPeak(id: string, bytes: number): Promise<void> {
    return raiseMaxMemory(this.db, id, bytes);
  }

  deleteExpiredLogs(before: Date): Promise<number> {
    return deleteExpiredLogLines(this.db, before);
  }

  deleteExpiredBackends(before: Date, limit: number): Promise<number> {
    return deleteTerminatedBackends(this.db, before, limit);
  }
}

function backendRowToScheduled(row: BackendRow): ScheduledBackend {
  return {
    id: row.id,
    accountName: row.account_name,
    serviceName: row.service_name,
    environmentName: row.environment_name,
    key: row.key,
    fencingToken: row.fencing_token === null ? null : Number(row.fencing_token),
    image: row.image,
    env: row.env,
    mount: row.mount,
    limits: row.resource_limits,
    security: row.container_security,
    status: row.status,
    containerId: row.container_id,
    createdAt: row.created_at,
    nodeName: row.node_name,
  };
}
